/**
 * A stand-in for AWS endpoints that records every request: the service and the region it is signed for (SigV4's
 * credential scope), and answers with what the test says. For what no emulator shows: where a client sends its
 * requests, and that a command sends none at all.
 */
import { IncomingMessage, Server, createServer } from 'node:http';
import { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  /** s3, secretsmanager, monitoring… from the signature's scope. */
  readonly service?: string;
  readonly region?: string;
  /** X-Amz-Target, for the JSON protocols (Secrets Manager). */
  readonly target?: string;
}

export interface RecordedAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** S3's answer to a ListObjectsV2 that found nothing. */
export const EMPTY_LISTING: RecordedAnswer = {
  status: 200,
  headers: { 'content-type': 'application/xml' },
  body: '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    '<Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>',
};

/** An S3 error in its XML shape: NoSuchKey (404), AccessDenied (403)… */
export function s3Error(status: number, code: string, message: string): RecordedAnswer {
  return {
    status, headers: { 'content-type': 'application/xml' },
    body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
  };
}

/** A Secrets Manager error in its JSON shape. */
export function secretsError(type: string, message: string): RecordedAnswer {
  return { status: 400, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ __type: type, message }) };
}

export class AwsRecorder {
  readonly requests: RecordedRequest[] = [];
  private readonly server: Server;

  /** `answer` decides the response to each request; by default S3 finds nothing and everything else is refused. */
  constructor(private readonly answer: (request: RecordedRequest) => RecordedAnswer = defaultAnswer) {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const recorded = record(req);
        this.requests.push(recorded);
        const { status, headers, body } = this.answer(recorded);
        res.writeHead(status, headers);
        res.end(body ?? '');
      });
    });
  }

  /** Listens on a free loopback port; returns the endpoint URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The regions the requests to one service were signed for, in order. */
  regions(service: string): (string | undefined)[] {
    return this.requests.filter((r) => r.service === service).map((r) => r.region);
  }
}

function record(req: IncomingMessage): RecordedRequest {
  const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(String(req.headers.authorization ?? ''));
  const target = req.headers['x-amz-target'];
  return { method: req.method ?? '', url: req.url ?? '', region: scope?.[1], service: scope?.[2], target: target ? String(target) : undefined };
}

function defaultAnswer(request: RecordedRequest): RecordedAnswer {
  if (request.service !== 's3') return secretsError('AccessDeniedException', 'refused by the test');
  return /[?&]list-type=2/.test(request.url) ? EMPTY_LISTING : s3Error(404, 'NoSuchKey', 'The specified key does not exist.');
}
