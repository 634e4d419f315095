/**
 * The S3 emulator, one per test file: a free port, a fresh data directory, the real AWS SDK.
 * s3rver 3.7.1 needs --openssl-legacy-provider, and --configure-bucket (without it paginated
 * listing answers 500). It accepts only the credentials S3RVER/S3RVER, ignores the Tagging
 * header on PutObject, and has no versioning or Object Lock. Its delimited listings are fixed in s3rver-main.cjs.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { freePort, waitForPort } from './net';
import { REPO_ROOT } from './paths';

export interface S3Emulator {
  readonly bucket: string;
  readonly port: number;
  readonly endpoint: string;
  /** The environment the agent needs to reach the emulator. */
  readonly env: Record<string, string>;
  readonly client: S3Client;
  /** Every key in the bucket under a prefix. */
  keys(prefix?: string): Promise<string[]>;
  getText(key: string): Promise<string | undefined>;
  getBytes(key: string): Promise<Buffer>;
  /** Kills the emulator abruptly (SIGKILL), as a network failure would look to the agent. */
  kill(): void;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

// The SDK's advice about node versions only clutters test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export async function startS3rver(bucket = 'backups'): Promise<S3Emulator> {
  const dataDir = mkdtempSync(join(tmpdir(), 's3rver-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = '';

  const launch = async () => {
    output = '';
    child = spawn(process.execPath, ['--openssl-legacy-provider', join(REPO_ROOT, 'test/support/s3rver-main.cjs'),
      '-d', dataDir, '-a', '127.0.0.1', '-p', String(port), '-s', '--configure-bucket', bucket], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (b: Buffer) => { output = (output + b.toString()).slice(-2000); });
    child.stderr?.on('data', (b: Buffer) => { output = (output + b.toString()).slice(-2000); });
    try {
      await waitForPort(port, 15_000, 's3rver');
    } catch (err) {
      throw new Error(`${(err as Error).message}; its output: ${output}`);
    }
  };
  await launch();

  const env = {
    AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const stopChild = () => new Promise<void>((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

  return {
    bucket, port, endpoint, env, client,
    keys: async (prefix = '') => {
      const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key!).sort();
    },
    getText: async (key) => {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return await out.Body!.transformToString();
      } catch (err) {
        if ((err as Error).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    getBytes: async (key) => {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    },
    kill: () => { child?.kill('SIGKILL'); },
    restart: async () => {
      await stopChild();
      await launch();
    },
    stop: async () => {
      await stopChild();
      client.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
