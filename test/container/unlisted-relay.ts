/**
 * A relay in front of moto's server that answers as S3 answers a role whose s3:ListBucket is limited by an s3:prefix
 * condition (the dump and restore-test roles): a GET or HEAD of a missing key is 403 AccessDenied, not 404, since
 * such a request carries no s3:prefix and so is not allowed to learn that the key is absent (S3 documents the 403 for
 * a principal without s3:ListBucket). A listing under the allowed prefix passes; with `listing: 'denied'` every
 * listing is refused too, as for a role without any ListBucket. moto answers everything else itself, including
 * conditional writes. Every request is recorded with the conditions and tags it carried.
 */
import { IncomingMessage, Server, ServerResponse, createServer, request } from 'node:http';
import { AddressInfo } from 'node:net';

export interface UnlistedRequest {
  readonly method: string;
  /** The object key, or '' for a bucket request such as a listing. */
  readonly key: string;
  /** ListObjectsV2's prefix and max-keys, for a listing. */
  readonly list?: { readonly prefix: string; readonly maxKeys?: number };
  readonly ifNoneMatch?: string;
  readonly ifMatch?: string;
  readonly tagging?: string;
  /** What the caller got. */
  status?: number;
}

const ACCESS_DENIED = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>';

export class UnlistedRelay {
  readonly requests: UnlistedRequest[] = [];
  /** Refuse every listing as well. */
  listing: 'allowed' | 'denied' = 'allowed';
  /** Runs before a request is passed on (another writer's change, say). */
  before?: (request: UnlistedRequest) => Promise<void>;
  /** Requests refused with 403 whatever the key holds, as for a key outside the role's grant. */
  deny?: (request: UnlistedRequest) => boolean;
  private readonly server: Server;

  /** `upstream`: moto's endpoint; `bucket`: the bucket the relay serves; `allowedPrefix`: what the role may list. */
  constructor(private readonly upstream: string, private readonly bucket: string, private readonly allowedPrefix = '') {
    this.server = createServer((req, res) => { void this.relay(req, res); });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async relay(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.upstream);
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const header = (name: string) => (req.headers[name] === undefined ? undefined : String(req.headers[name]));
    const recorded: UnlistedRequest = {
      method: req.method ?? '', key,
      ...(url.searchParams.get('list-type') === '2'
        ? { list: { prefix: url.searchParams.get('prefix') ?? '', maxKeys: url.searchParams.has('max-keys') ? Number(url.searchParams.get('max-keys')) : undefined } }
        : {}),
      ifNoneMatch: header('if-none-match'), ifMatch: header('if-match'), tagging: header('x-amz-tagging'),
    };
    this.requests.push(recorded);
    if (this.before) await this.before(recorded);
    const refuse = () => {
      recorded.status = 403;
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : ACCESS_DENIED);
    };
    const listingRefused = recorded.list && (this.listing === 'denied' || !recorded.list.prefix.startsWith(this.allowedPrefix));
    if (bucket === this.bucket && (listingRefused || this.deny?.(recorded))) {
      req.resume();
      refuse();
      return;
    }
    const forwarded = request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (answer) => {
      const missingKey = bucket === this.bucket && key !== '' && (req.method === 'GET' || req.method === 'HEAD') && answer.statusCode === 404;
      if (missingKey) {
        answer.resume();
        refuse();
        return;
      }
      recorded.status = answer.statusCode;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`the relay could not reach moto at ${this.upstream}: ${err.message}`);
    });
    req.pipe(forwarded);
  }
}
