/**
 * moto's server, the AWS emulator for the behaviour s3rver lacks: S3 versioning, Object Lock default
 * retention (single-part PUTs only: moto ignores lock headers on multipart uploads), legal holds,
 * conditional writes, tags given at creation and archive classes; Secrets Manager with replica regions;
 * CloudWatch metrics read back; SNS delivered to SQS. `npm run services` starts one server for all tests
 * (scripts/services.sh); test files keep apart by unique names, never by resetting it. A test that needs
 * server-wide state (a manual restore progression) starts a private server with startPrivateMoto().
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand, GetObjectCommand, ListObjectVersionsCommand, ListObjectsV2Command, ObjectLockRetentionMode,
  PutBucketVersioningCommand, PutObjectLockConfigurationCommand, S3Client,
} from '@aws-sdk/client-s3';
import { freePort, waitForPort } from './net';
import { S3Emulator } from './s3rver';

// The SDK's advice about node versions only clutters test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const MOTO_TOOLS = process.env.RESTORABLE_TOOLS ?? '/opt/restorable-tools';
const SHARED_PORT = Number(process.env.RESTORABLE_MOTO_PORT ?? 5055);
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export interface Moto {
  readonly endpoint: string;
  /** The environment an agent or handler needs to reach this server for every AWS service. */
  env(region?: string): Record<string, string>;
  /** Client options for any AWS SDK v3 client. */
  config(region?: string): { endpoint: string; region: string; credentials: typeof MOTO_CREDENTIALS; forcePathStyle: true };
}

function motoAt(endpoint: string): Moto {
  return {
    endpoint,
    env: (region = 'us-east-1') => ({
      AWS_ENDPOINT_URL: endpoint, AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: region, AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    }),
    config: (region = 'us-east-1') => ({ endpoint, region, credentials: MOTO_CREDENTIALS, forcePathStyle: true }),
  };
}

/**
 * Whether a moto server answers, asked through its state manager: cheap and without side effects. (data.json reads
 * every model's status, which moves restores along, and answers 500 once any restored object's bucket is gone.)
 */
function answers(endpoint: string): Promise<boolean> {
  return fetch(`${endpoint}/moto-api/state-manager/get-transition?model_name=s3::keyrestore`).then((r) => r.ok, () => false);
}

/** The shared server; fails loudly, never skips, when it is not running. */
export async function sharedMoto(): Promise<Moto> {
  const endpoint = `http://127.0.0.1:${SHARED_PORT}`;
  if (!await answers(endpoint)) throw new Error(`moto's server is not answering at ${endpoint}: run 'npm run services' (after 'bash scripts/install-deps.sh')`);
  return motoAt(endpoint);
}

/** How often a model's status must be read before it moves on (moto's state manager; 'immediate' is the default). */
export type MotoTransition = { progression: 'immediate' } | { progression: 'manual'; times: number } | { progression: 'time'; seconds: number };

export interface PrivateMoto extends Moto {
  /** Sets (or, without a transition, unsets) a model's progression, e.g. 's3::keyrestore': server-wide. */
  setTransition(modelName: string, transition?: MotoTransition): Promise<void>;
  stop(): Promise<void>;
}

/** A server of this test file's own, for server-wide settings; stop it in afterAll. */
export async function startPrivateMoto(): Promise<PrivateMoto> {
  const port = await freePort();
  const binary = `${MOTO_TOOLS}/aws/bin/moto_server`;
  let output = '';
  const child: ChildProcess = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('error', (err) => { output += `${err.message}; run 'bash scripts/install-deps.sh'`; });
  child.stderr?.on('data', (b: Buffer) => { output = (output + b.toString()).slice(-2000); });
  try {
    await waitForPort(port, 20_000, `moto_server (${binary})`);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; its output: ${output}`);
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    ...motoAt(endpoint),
    setTransition: async (modelName, transition) => {
      const response = await fetch(`${endpoint}/moto-api/state-manager/${transition ? 'set' : 'unset'}-transition`, {
        method: 'POST', body: JSON.stringify({ model_name: modelName, transition }),
      });
      if (!response.ok) throw new Error(`moto's state manager refused ${modelName} ${JSON.stringify(transition)}: ${response.status} ${await response.text()}`);
    },
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}

/** A name no other test file uses on the shared server. */
export function motoName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface MotoBucketOptions {
  /** Versioning on (implied by Object Lock). */
  readonly versioned?: boolean;
  /** Object Lock with a default retention, as BackupStore configures it. */
  readonly objectLock?: { readonly mode: ObjectLockRetentionMode; readonly days: number };
}

export interface MotoBucket extends S3Emulator {
  /** Every version of a key, newest first. */
  versions(key: string): Promise<{ versionId: string; isLatest: boolean; size: number }[]>;
}

/** A fresh bucket on a moto server, with the same surface as an s3rver emulator (but no kill or restart). */
export async function motoBucket(options: MotoBucketOptions = {}, server?: Moto): Promise<MotoBucket> {
  const moto = server ?? await sharedMoto();
  const bucket = motoName('backups');
  const client = new S3Client(moto.config());
  await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: options.objectLock ? true : undefined }));
  if (options.versioned && !options.objectLock) {
    await client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  }
  if (options.objectLock) {
    await client.send(new PutObjectLockConfigurationCommand({
      Bucket: bucket,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: options.objectLock.mode, Days: options.objectLock.days } } },
    }));
  }
  const unsupported = (what: string) => () => { throw new Error(`${what} is an s3rver-only helper: moto's server is shared by every test`); };
  return {
    bucket,
    port: Number(new URL(moto.endpoint).port),
    endpoint: moto.endpoint,
    env: moto.env(),
    client,
    keys: async (prefix = '') => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        keys.push(...(out.Contents ?? []).map((o) => o.Key!));
        token = out.NextContinuationToken;
      } while (token);
      return keys.sort();
    },
    getText: async (key) => {
      try {
        return await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
      } catch (err) {
        if ((err as Error).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    getBytes: async (key) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray()),
    versions: async (key) => {
      const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
      return (out.Versions ?? []).filter((v) => v.Key === key)
        .map((v) => ({ versionId: v.VersionId!, isLatest: Boolean(v.IsLatest), size: v.Size ?? 0 }));
    },
    kill: unsupported('kill'),
    restart: unsupported('restart'),
    stop: async () => { client.destroy(); },
  };
}
