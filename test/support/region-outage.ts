/**
 * A pass-through to moto's server for Secrets Manager, on a loopback port of its own: it records every request
 * (the operation, the secret id and the region the request is signed for) and refuses, as an unreachable region
 * would, every request signed for a region declared lost. moto serves the secrets and their replicas; what it
 * cannot do is lose a region: a primary that has replicas cannot be deleted, and a replica cannot be promoted
 * (moto has no StopReplicationToReplica), so the outage is this relay's.
 */
import { IncomingMessage, Server, ServerResponse, createServer, request } from 'node:http';
import { AddressInfo } from 'node:net';

export interface RelayedRequest {
  readonly target: string;
  readonly secretId: string;
  readonly region?: string;
}

export class RegionOutage {
  /** Every request that reached the relay, refused or not, in order. */
  readonly requests: RelayedRequest[] = [];
  private readonly lost = new Set<string>();
  private readonly server: Server;

  /** `upstream`: moto's endpoint, e.g. http://127.0.0.1:5055. */
  constructor(private readonly upstream: string) {
    this.server = createServer((req, res) => this.relay(req, res));
  }

  /** Listens on a free loopback port; returns the endpoint URL to give the SDK or the aws CLI. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** From now on, every request signed for `region` is refused. */
  lose(region: string): void {
    this.lost.add(region);
  }

  private relay(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const target = String(req.headers['x-amz-target'] ?? '');
      let secretId = '';
      try {
        secretId = String((JSON.parse(body.toString() || '{}') as { SecretId?: string }).SecretId ?? '');
      } catch {
        // Not JSON: recorded without a secret id, and moto answers it.
      }
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/secretsmanager\//.exec(String(req.headers.authorization ?? ''))?.[1];
      this.requests.push({ target, secretId, region });
      if (region && this.lost.has(region)) {
        res.writeHead(503, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'ServiceUnavailable', message: `region ${region} is lost (a test's outage)` }));
        return;
      }
      const url = new URL(req.url ?? '/', this.upstream);
      const forwarded = request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forwarded.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`the relay could not reach moto at ${this.upstream}: ${err.message}`);
      });
      forwarded.end(body);
    });
  }
}
