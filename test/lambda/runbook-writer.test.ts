/**
 * The runbook-writer custom resource against moto's server with the real SDK: it renders each source's runbook and
 * writes it into the primary and the replica bucket, signing each write for that bucket's own region, creating
 * with If-None-Match: * and replacing with If-Match (the ETag it just read), as the store's bucket policy demands
 * (which no emulator enforces: the conditions sent are seen by a recording relay in front of the server). The relay
 * also plays what moto cannot: another writer changing a runbook between the writer's read and its write, and S3's
 * 403 for a missing key to a principal that may not list the bucket (the writer may not).
 */
import { IncomingMessage, Server, createServer, request } from 'node:http';
import { AddressInfo } from 'node:net';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Engine, ReportsCopy, renderRunbook, runbookBlocks, runbookKey } from '../../lib/contract';
import { CustomResourceEvent, CustomResourceResponse } from '../../lambda/shared/cfn-response';
import { WRITE_ATTEMPTS, handler, respondTo } from '../../lambda/runbook-writer/index';
import { MotoBucket, motoBucket, motoName } from '../support';

const REPLICA_BUCKET = motoName('runbooks-replica');
const SECRET_ARN = 'arn:aws:secretsmanager:eu-central-1:123456789012:secret:BackupKeysIdentity-AbCdEf';

let s3: MotoBucket;
let relay: Server;
/** `METHOD /path region condition status` of every request that reached the server through the relay. */
let seen: string[];
/** Runs before a PUT is passed on: another writer's change, say. */
let beforePut: ((path: string) => Promise<void>) | undefined;
/** HEADs S3 answers 403, as it does for a principal without s3:ListBucket: for missing keys, or for every key. */
let headDenied: 'missing' | 'all' | undefined;

/** A relay in front of the server that records each request's region (from its signature) and condition. */
async function recordingRelay(target: string): Promise<string> {
  const { hostname, port } = new URL(target);
  relay = createServer((req: IncomingMessage, res) => {
    const path = req.url?.split('?')[0] ?? '';
    const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\//.exec(String(req.headers.authorization ?? ''))?.[1];
    const condition = req.headers['if-none-match'] ? `If-None-Match:${String(req.headers['if-none-match'])}`
      : req.headers['if-match'] ? 'If-Match' : '-';
    void (async () => {
      if (req.method === 'PUT' && beforePut) await beforePut(path);
      const upstream = request({ host: hostname, port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        let status = answer.statusCode ?? 502;
        if (req.method === 'HEAD' && (headDenied === 'all' || (headDenied === 'missing' && status === 404))) status = 403;
        seen.push(`${req.method} ${path} ${region} ${condition} ${status}`);
        res.writeHead(status, status === answer.statusCode ? answer.headers : {});
        answer.pipe(res);
      });
      req.pipe(upstream);
    })();
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

const rendered = (source: string, engine: Engine, replica = true) => renderRunbook({
  source, engine, prefix: 'prod/', identitySecretArn: SECRET_ARN,
  primary: { bucket: s3.bucket, region: 'eu-central-1' }, ...(replica ? { replica: { bucket: REPLICA_BUCKET, region: 'eu-west-1' } } : {}),
});

/** Another writer's runbook, put straight into the server. */
const putDirectly = (key: string, text: string, bucket = s3.bucket) =>
  s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: text }));

beforeAll(async () => {
  s3 = await motoBucket();
  await s3.client.send(new CreateBucketCommand({ Bucket: REPLICA_BUCKET }));
  const endpoint = await recordingRelay(s3.endpoint);
  Object.assign(process.env, { AWS_ENDPOINT_URL_S3: endpoint, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' });
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'error').mockImplementation(() => undefined);
});

beforeEach(() => {
  seen = [];
  beforePut = undefined;
  headDenied = undefined;
});

afterAll(async () => {
  await new Promise((resolve) => relay?.close(resolve));
  await s3?.stop();
});

test('Create writes every source\'s rendered runbook into the primary and the replica bucket, each in its region, with If-None-Match', async () => {
  const fresh = properties({ Prefix: 'fresh/' });
  const response = await respondTo(event('Create', fresh));

  expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'runbooks-req-1', Data: { Runbooks: '4' } });
  for (const source of ['orders-db', 'shop-db']) {
    const inPrimary = await s3.getText(runbookKey('fresh/', source));
    expect(inPrimary).toContain(`s3://${REPLICA_BUCKET}/fresh/${source}/RUNBOOK.md`);
    const inReplica = await s3.client.send(new GetObjectCommand({ Bucket: REPLICA_BUCKET, Key: runbookKey('fresh/', source) }));
    expect(await inReplica.Body!.transformToString()).toBe(inPrimary);
  }
  expect(seen).toEqual([
    `HEAD /${s3.bucket}/fresh/orders-db/RUNBOOK.md eu-central-1 - 404`, `PUT /${s3.bucket}/fresh/orders-db/RUNBOOK.md eu-central-1 If-None-Match:* 200`,
    `HEAD /${s3.bucket}/fresh/shop-db/RUNBOOK.md eu-central-1 - 404`, `PUT /${s3.bucket}/fresh/shop-db/RUNBOOK.md eu-central-1 If-None-Match:* 200`,
    `HEAD /${REPLICA_BUCKET}/fresh/orders-db/RUNBOOK.md eu-west-1 - 404`, `PUT /${REPLICA_BUCKET}/fresh/orders-db/RUNBOOK.md eu-west-1 If-None-Match:* 200`,
    `HEAD /${REPLICA_BUCKET}/fresh/shop-db/RUNBOOK.md eu-west-1 - 404`, `PUT /${REPLICA_BUCKET}/fresh/shop-db/RUNBOOK.md eu-west-1 If-None-Match:* 200`,
  ]);
});

test('with a vault in another account, Create writes the primary bucket alone, and the DR path names the vault\'s account, role and identity', async () => {
  const vault = {
    VaultAccount: '222222222222', VaultRestoreRoleArn: 'arn:aws:iam::222222222222:role/restorable/restore/restorable-restore-eu-west-1',
    VaultIdentitySecretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:VaultIdentity-identity',
  };
  const response = await respondTo(event('Create', properties({ Prefix: 'vaulted/', ...vault })));

  // Replication carries the runbooks to the vault, which admits the primary only to replicate.
  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '2' } });
  expect(seen.filter((line) => line.includes(REPLICA_BUCKET))).toEqual([]);
  expect(seen.filter((line) => line.startsWith('PUT '))).toEqual([
    `PUT /${s3.bucket}/vaulted/orders-db/RUNBOOK.md eu-central-1 If-None-Match:* 200`, `PUT /${s3.bucket}/vaulted/shop-db/RUNBOOK.md eu-central-1 If-None-Match:* 200`,
  ]);
  const text = (await s3.getText(runbookKey('vaulted/', 'orders-db')))!;
  const scene = runbookBlocks(text).find((b) => b.step === '0' && b.path === 'dr')!.code;
  expect(scene).toContain(`RESTORE_ROLE='${vault.VaultRestoreRoleArn}'`);
  expect(scene).toContain(`IDENTITY_SECRET='${vault.VaultIdentitySecretArn}'`);
  expect(scene).toContain(`BUCKET='${REPLICA_BUCKET}'`);
  expect(text).toContain('| Account | the primary\'s | 222222222222 (the vault)');
});

test('the vault\'s own (Copy vault): Create writes {source}/vault/RUNBOOK.md in the vault bucket alone, with the vault\'s facts and the DR path only', async () => {
  const vault = {
    Copy: 'vault', Bucket: REPLICA_BUCKET, Region: 'eu-west-1', Prefix: 'own/', VaultAccount: '222222222222',
    VaultRestoreRoleArn: 'arn:aws:iam::222222222222:role/restorable/restore/restorable-restore-eu-west-1',
    VaultIdentitySecretArn: 'arn:aws:secretsmanager:eu-west-1:222222222222:secret:VaultIdentity-identity',
  };
  const response = await respondTo(event('Create', { ...properties(vault), ReplicaBucket: undefined, ReplicaRegion: undefined, IdentitySecretArn: undefined }));

  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '2' } });
  expect(seen).toEqual([
    `HEAD /${REPLICA_BUCKET}/own/orders-db/vault/RUNBOOK.md eu-west-1 - 404`, `PUT /${REPLICA_BUCKET}/own/orders-db/vault/RUNBOOK.md eu-west-1 If-None-Match:* 200`,
    `HEAD /${REPLICA_BUCKET}/own/shop-db/vault/RUNBOOK.md eu-west-1 - 404`, `PUT /${REPLICA_BUCKET}/own/shop-db/vault/RUNBOOK.md eu-west-1 If-None-Match:* 200`,
  ]);
  const read = await s3.client.send(new GetObjectCommand({ Bucket: REPLICA_BUCKET, Key: runbookKey('own/', 'orders-db', ReportsCopy.VAULT) }));
  const text = await read.Body!.transformToString();
  expect(text).toBe(renderRunbook({ source: 'orders-db', engine: Engine.POSTGRES, prefix: 'own/', replica: { bucket: REPLICA_BUCKET, region: 'eu-west-1' },
    vault: { account: vault.VaultAccount, restoreRoleArn: vault.VaultRestoreRoleArn, identitySecretArn: vault.VaultIdentitySecretArn } }));
  const blocks = runbookBlocks(text);
  expect(blocks.filter((b) => b.step === '0').map((b) => b.path)).toEqual(['dr']);
  expect(blocks[0].code).toContain(`RESTORE_ROLE='${vault.VaultRestoreRoleArn}'`);
  expect(blocks[0].code).toContain(`IDENTITY_SECRET='${vault.VaultIdentitySecretArn}'`);
  expect(text).toContain(`restorable runbook --vault --source orders-db --bucket ${REPLICA_BUCKET} --region eu-west-1`);
  // Nothing of the primary's: it knows no primary bucket, and names no primary identity.
  expect(text).not.toContain(s3.bucket);
  expect(text).not.toMatch(/path=primary/);
});

test.each([
  [{ ReplicaBucket: REPLICA_BUCKET }, /ReplicaBucket and IdentitySecretArn are the primary's/],
  [{ ReplicaBucket: undefined, ReplicaRegion: undefined }, /ReplicaBucket and IdentitySecretArn are the primary's/],
  [{ ReplicaBucket: undefined, ReplicaRegion: undefined, IdentitySecretArn: undefined }, /property VaultAccount is missing: the VaultRunbook construct sets it/],
  [{ Copy: 'elsewhere' }, /property Copy is 'elsewhere'/],
])('the vault\'s own with a property it may not have, or without one it needs (%o), is refused before anything is written', async (overrides, reason) => {
  const response = await respondTo(event('Create', properties({ Copy: 'vault', Prefix: 'refused/', ...overrides })));
  expect(response.Status).toBe('FAILED');
  expect(response.Reason).toMatch(reason);
  expect(seen).toEqual([]);
});

test('a vault account without its role is refused before anything is written', async () => {
  const response = await respondTo(event('Create', properties({ Prefix: 'half-vault/', VaultAccount: '222222222222' })));
  expect(response).toMatchObject({ Status: 'FAILED', Reason: 'Error: property VaultRestoreRoleArn is missing: the DisasterRecoveryRunbook construct sets it' });
  expect(seen).toEqual([]);
});

test('Update replaces an existing runbook with If-Match, naming the ETag it read', async () => {
  await putDirectly(runbookKey('prod/', 'orders-db'), 'an older runbook');
  await putDirectly(runbookKey('prod/', 'orders-db'), 'an older runbook', REPLICA_BUCKET);

  const response = await respondTo(event('Update', properties()));

  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '4' } });
  expect(await s3.getText(runbookKey('prod/', 'orders-db'))).toBe(rendered('orders-db', Engine.POSTGRES));
  expect(seen).toEqual(expect.arrayContaining([
    `HEAD /${s3.bucket}/prod/orders-db/RUNBOOK.md eu-central-1 - 200`, `PUT /${s3.bucket}/prod/orders-db/RUNBOOK.md eu-central-1 If-Match 200`,
    `HEAD /${REPLICA_BUCKET}/prod/orders-db/RUNBOOK.md eu-west-1 - 200`, `PUT /${REPLICA_BUCKET}/prod/orders-db/RUNBOOK.md eu-west-1 If-Match 200`,
  ]));
  expect(seen.filter((line) => line.startsWith('PUT ') && !/ (If-Match|If-None-Match:\*) 200$/.test(line))).toEqual([]);
});

test('a runbook changed between the read and the write is read again and written by its new ETag', async () => {
  const key = runbookKey('prod/', 'orders-db');
  await putDirectly(key, 'an older runbook');
  let changes = 0;
  beforePut = async (path) => {
    if (path === `/${s3.bucket}/${key}` && changes++ === 0) await putDirectly(key, 'changed by someone else in between');
  };

  const response = await respondTo(event('Update', properties({ ReplicaBucket: undefined, ReplicaRegion: undefined })));

  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '2' } });
  expect(await s3.getText(key)).toBe(rendered('orders-db', Engine.POSTGRES, false));
  expect(seen.filter((line) => line.includes(key))).toEqual([
    `HEAD /${s3.bucket}/${key} eu-central-1 - 200`, `PUT /${s3.bucket}/${key} eu-central-1 If-Match 412`,
    `HEAD /${s3.bucket}/${key} eu-central-1 - 200`, `PUT /${s3.bucket}/${key} eu-central-1 If-Match 200`,
  ]);
});

test('a runbook that keeps changing under the writer fails the request clearly, after a few attempts', async () => {
  const key = runbookKey('prod/', 'orders-db');
  beforePut = async (path) => {
    if (path === `/${s3.bucket}/${key}`) await putDirectly(key, `changed by someone else at ${Date.now()}`);
  };

  const response = await respondTo(event('Update', properties({ ReplicaBucket: undefined, ReplicaRegion: undefined })));

  expect(response.Status).toBe('FAILED');
  expect(response.Reason).toMatch(new RegExp(`s3://${s3.bucket}/prod/orders-db/RUNBOOK.md changed between reading and writing it ${WRITE_ATTEMPTS} times running`));
  expect(seen.filter((line) => line.startsWith('PUT ') && line.includes(key))).toHaveLength(WRITE_ATTEMPTS);
});

test('S3\'s 403 for a missing key (the writer may not list the bucket) is unknown, settled by a create with If-None-Match', async () => {
  headDenied = 'missing';
  const fresh = properties({ Prefix: 'unlisted/', ReplicaBucket: undefined, ReplicaRegion: undefined });

  const response = await respondTo(event('Create', fresh));

  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '2' } });
  expect(await s3.getText(runbookKey('unlisted/', 'orders-db'))).toContain('orders-db');
  expect(seen.slice(0, 2)).toEqual([
    `HEAD /${s3.bucket}/unlisted/orders-db/RUNBOOK.md eu-central-1 - 403`,
    `PUT /${s3.bucket}/unlisted/orders-db/RUNBOOK.md eu-central-1 If-None-Match:* 200`,
  ]);
});

test('a runbook that exists but cannot be read fails clearly rather than being overwritten blindly', async () => {
  headDenied = 'all';
  const response = await respondTo(event('Update', properties({ ReplicaBucket: undefined, ReplicaRegion: undefined })));

  expect(response.Status).toBe('FAILED');
  expect(response.Reason).toMatch(/prod\/orders-db\/RUNBOOK.md exists but HeadObject on it is denied.*s3:GetObject/);
  expect(seen.filter((line) => line.startsWith('PUT ')).every((line) => line.includes('If-None-Match:* 412'))).toBe(true);
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

test('a source whose WAL is archived gets the point-in-time recovery section; the others do not', async () => {
  const sources = [{ name: 'orders-db', engine: Engine.POSTGRES, walArchived: true }, { name: 'shop-db', engine: Engine.MYSQL }];
  const response = await respondTo(event('Create', properties({ Prefix: 'pitr/', Sources: JSON.stringify(sources) })));

  expect(response).toMatchObject({ Status: 'SUCCESS', Data: { Runbooks: '4' } });
  const steps = async (source: string) => runbookBlocks((await s3.getText(runbookKey('pitr/', source)))!).map((b) => b.step).filter((step) => step.startsWith('pitr'));
  expect(await steps('orders-db')).toEqual(['pitr1', 'pitr1', 'pitr2', 'pitr3', 'pitr4', 'pitr5']);
  expect(await steps('shop-db')).toEqual([]);
});

test('without a replica, only the primary bucket is written and the runbook says there is no offsite copy', async () => {
  const response = await respondTo(event('Update', properties({ ReplicaBucket: undefined, ReplicaRegion: undefined })));

  expect(response).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: 'runbooks-req-0', Data: { Runbooks: '2' } });
  expect(seen.every((line) => line.includes(`/${s3.bucket}/`))).toBe(true);
  expect(seen.length).toBeGreaterThan(0);
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
  [{ Sources: JSON.stringify([{ name: 'shop-db', engine: Engine.MYSQL, walArchived: true }]) }, /walArchived is for PostgreSQL sources, and this one is mysql/],
  [{ Sources: JSON.stringify([{ name: 'orders-db', engine: Engine.POSTGRES, walArchived: 'yes' }]) }, /source 'orders-db' has walArchived "yes": true or absent/],
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
