/**
 * A STUB of Secrets Manager, not an emulator: a local HTTP server that answers GetSecretValue (JSON 1.1
 * protocol) for the secrets it is given, and nothing else. No Secrets Manager emulator exists here, so tests
 * point the SDK (AWS_ENDPOINT_URL_SECRETS_MANAGER) or the aws CLI (--endpoint-url) at it.
 *
 * A secret may be tied to a region: the stub then answers only requests signed for that region (the
 * credential scope of the SigV4 Authorization header), as the replica of a secret lives in its DR region.
 */
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';

export interface StubSecret {
  readonly arn: string;
  readonly name: string;
  readonly secretString: string;
  /** Serve it only to requests signed for this region. */
  readonly region?: string;
}

export interface StubRequest {
  readonly target: string;
  readonly secretId: string;
  readonly region?: string;
}

export class SecretsManagerStub {
  readonly requests: StubRequest[] = [];
  private readonly server: Server;

  constructor(private readonly secrets: readonly StubSecret[]) {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Listens on a free loopback port; returns the endpoint URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const secretId = String((JSON.parse(body || '{}') as { SecretId?: string }).SecretId);
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/secretsmanager\//.exec(String(req.headers.authorization ?? ''))?.[1];
      this.requests.push({ target, secretId, region });
      const reply = (status: number, payload: object) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(payload));
      };
      if (target !== 'secretsmanager.GetSecretValue') {
        return reply(400, { __type: 'InvalidRequestException', message: `stub serves GetSecretValue only, not ${target}` });
      }
      const secret = this.secrets.find((s) => (s.arn === secretId || s.name === secretId) && (!s.region || s.region === region));
      if (!secret) return reply(400, { __type: 'ResourceNotFoundException', message: `stub has no secret ${secretId} in region ${region}` });
      reply(200, { ARN: secret.arn, Name: secret.name, SecretString: secret.secretString, VersionId: 'stub-1', VersionStages: ['AWSCURRENT'], CreatedDate: 0 });
    });
  }
}
