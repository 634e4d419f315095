/**
 * A TCP relay in front of the S3 emulator that cuts everything off once a given number of bytes
 * went through: the way to stop S3 in the middle of an upload at a known point.
 */
import { Server, Socket, createServer, connect } from 'node:net';

export interface CuttingProxy {
  readonly endpoint: string;
  /** Resolves when the cut happened. */
  readonly cut: Promise<number>;
  close(): Promise<void>;
}

export async function cuttingProxy(targetPort: number, cutAfterBytes: number, onCut: () => void): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  let forwarded = 0;
  let resolveCut: (bytes: number) => void = () => undefined;
  const cut = new Promise<number>((resolve) => { resolveCut = resolve; });
  const cutNow = () => {
    onCut();
    server.close();
    for (const s of sockets) s.destroy();
    resolveCut(forwarded);
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      forwarded += chunk.length;
      if (forwarded >= cutAfterBytes) cutNow();
      else upstream.write(chunk);
    });
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    cut,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}
