/**
 * The runbook-writer custom resource against the S3 emulator with the real SDK: it renders each source's
 * runbook and writes it into the primary and the replica bucket, signing each write for that bucket's own
 * region (seen by a recording relay in front of the emulator), and answers CloudFormation itself.
 */
import { IncomingMessage, Server, createServer, request } from 'node:http';
import { AddressInfo } from 'node:net';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Engine, renderRunbook, runbookBlocks, runbookKey } from '../../lib/contract';
import { CustomResourceEvent, CustomResourceResponse } from '../../lambda/shared/cfn-response';
import { handler, respondTo } from '../../lambda/runbook-writer/index';
import { S3Emulator, startS3rver } from '../support';

const REPLICA_BUCKET = 'runbooks-replica';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:BackupKeysIdentity-AbCdEf';

let s3: S3Emulator;
let relay: Server;
/** `METHOD /path region` of every request that reached the emulator. */
let seen: string[];

/** A relay in front of the emulator that records which region each request was signed for. */
async function recordingRelay(target: number): Promise<string> {
  relay = createServer((req: IncomingMessage, res) => {
    const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\//.exec(String(req.headers.authorization ?? ''))?.[1];
    seen.push(`${req.method} ${req.url?.split('?')[0]} ${region}`);
    const upstream = request({ host: '127.0.0.1', port: target, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
}

function event(requestType: CustomResourceEvent['RequestType'], properties: Record<string, unknown>, responseURL = 'http://127.0.0.1:9/unused'): CustomResourceEvent {
  return {
    RequestType: requestType, ResponseURL: responseURL, StackId: 'arn:aws:cloudformation:eu-central-1:123456789012:stack/s/1',
    RequestId: 'req-1', LogicalResourceId: 'Runbook', ResourceType: 'Custom::RestorableRunbook',
    ...(requestType === 'Create' ? {} : { PhysicalResourceId: 'runbooks-req-0' }),
    ResourceProperties: properties,
  };
}

const properties = (overrides: Record<string, unknown> = {}) => ({
  ServiceToken: 'arn:aws:lambda:eu-central-1:123456789012:function:writer',
  Bucket: s3.bucket, Region: 'eu-central-1', Prefix: 'prod/', ReplicaBucket: REPLICA_BUCKET, ReplicaRegion: 'eu-west-1',
  IdentitySecretArn: SECRET_ARN,
  Sources: JSON.stringify([{ name: 'orders-db', engine: Engine.POSTGRES }, { name: 'shop-db', engine: Engine.MYSQL }]),
  ...overrides,
});

beforeAll(async () => {
  s3 = await startS3rver('runbooks-primary');
  await s3.client.send(new CreateBucketCommand({ Bucket: REPLICA_BUCKET }));
  const endpoint = await recordingRelay(s3.port);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

beforeEach(() => { seen = []; });

afterAll(async () => {
  await new Promise((resolve) => relay?.close(resolve));
  await s3?.stop();
});

test('Create writes every source\'s rendered runbook into the primary and the replica bucket, each in its region', async () => {
  const response = await respondTo(event('Create', properties()));

  expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'runbooks-req-1', Data: { Runbooks: '4' } });
  for (const [source, engine] of [['orders-db', Engine.POSTGRES], ['shop-db', Engine.MYSQL]] as const) {
    const expected = renderRunbook({
      source, engine, prefix: 'prod/', identitySecretArn: SECRET_ARN,
      primary: { bucket: s3.bucket, region: 'eu-central-1' }, replica: { bucket: REPLICA_BUCKET, region: 'eu-west-1' },
    });
    expect(await s3.getText(runbookKey('prod/', source))).toBe(expected);
    const inReplica = await s3.client.send(new GetObjectCommand({ Bucket: REPLICA_BUCKET, Key: runbookKey('prod/', source) }));
    expect(await inReplica.Body!.transformToString()).toBe(expected);
    expect(expected).toContain(`s3://${REPLICA_BUCKET}/prod/${source}/RUNBOOK.md`);
  }
  expect(seen).toEqual([
    `PUT /${s3.bucket}/prod/orders-db/RUNBOOK.md eu-central-1`, `PUT /${s3.bucket}/prod/shop-db/RUNBOOK.md eu-central-1`,
    `PUT /${REPLICA_BUCKET}/prod/orders-db/RUNBOOK.md eu-west-1`, `PUT /${REPLICA_BUCKET}/prod/shop-db/RUNBOOK.md eu-west-1`,
  ]);
});

test('the rendered runbook has both ways through steps 1 to 8, a DR scene, Glacier and key loss', async () => {
  await respondTo(event('Create', properties()));
  const blocks = runbookBlocks((await s3.getText(runbookKey('prod/', 'orders-db')))!);
  const standard = new Set(blocks.filter((b) => b.via === 'standard').map((b) => `${b.step}${b.path ? `/${b.path}` : ''}`));
  const agent = new Set(blocks.filter((b) => b.via === 'restorable').map((b) => b.step));
  expect([...standard].sort()).toEqual(['0/dr', '0/primary', '1', '2', '3', '4', '5', '6', '7', '8', 'glacier', 'key-loss']);
  expect([...agent].sort()).toEqual(['1', '2', '3', '4', '6', '7', 'glacier', 'key-loss']);
  expect(blocks.find((b) => b.path === 'dr')!.code).toContain("IDENTITY_SECRET='arn:aws:secretsmanager:eu-west-1:123456789012:secret:BackupKeysIdentity-AbCdEf'");
});

test('without a replica, only the primary bucket is written and the runbook says there is no offsite copy', async () => {
  const response = await respondTo(event('Update', properties({ ReplicaBucket: undefined, ReplicaRegion: undefined })));

  expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'runbooks-req-0', Data: { Runbooks: '2' } });
  expect(seen.every((line) => line.includes(`/${s3.bucket}/`))).toBe(true);
  expect(await s3.getText(runbookKey('prod/', 'orders-db'))).toContain('no replica: this store has no offsite copy');
});

test('Delete leaves the runbooks in place and succeeds', async () => {
  const response = await respondTo(event('Delete', properties()));
  expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'runbooks-req-0' });
  expect(seen).toEqual([]);
});

test.each([
  [{ Sources: JSON.stringify([{ name: 'Orders DB', engine: Engine.POSTGRES }]) }, /source name 'Orders DB' is invalid/],
  [{ Sources: JSON.stringify([{ name: 'orders-db', engine: 'oracle' }]) }, /unknown engine 'oracle'/],
  [{ Bucket: 'no-such-bucket' }, /NoSuchBucket/],
  [{ Region: undefined }, /property Region is missing/],
])('a bad request (%o) fails with a reason CloudFormation shows', async (overrides, reason) => {
  const response = await respondTo(event('Create', properties(overrides)));
  expect(response.Status).toBe('FAILED');
  expect(response.Reason).toMatch(reason);
  expect(response.Reason).not.toMatch(/\n\s+at /);
});

test('handler answers CloudFormation at the ResponseURL with a PUT', async () => {
  const received: CustomResourceResponse[] = [];
  const cfn = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => { body += chunk.toString(); });
    req.on('end', () => { received.push(JSON.parse(body)); res.end(); });
  });
  await new Promise<void>((resolve) => cfn.listen(0, '127.0.0.1', resolve));
  try {
    await handler(event('Create', properties(), `http://127.0.0.1:${(cfn.address() as AddressInfo).port}/response`));
    expect(received).toEqual([expect.objectContaining({ Status: 'SUCCESS', LogicalResourceId: 'Runbook', Data: { Runbooks: '4' } })]);
  } finally {
    await new Promise((resolve) => cfn.close(resolve));
  }
});
