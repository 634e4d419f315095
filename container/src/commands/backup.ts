/**
 * `restorable backup`: dump → zstd → age → S3, then the manifest, then latest.json (design §3).
 * Nothing becomes visible as a good backup unless every step succeeded.
 */
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  BinlogCoordinates, Companion, Engine, LatestPointer, MANIFEST_FORMAT_VERSION, Manifest, TIER_TAG, TableCount, Tier,
  backupKey, globalsKeyFor, latestKey, manifestKeyFor, parseLatest, sourceNameProblem, tierFor,
} from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { CONNECTION_OPTIONS, MONGODB_CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import {
  DEFAULT_ZSTD_LEVEL, RECIPIENT_OPTIONS, Recipient, compressStage, compressedInputBytes, encryptStage, recipientFromArgs,
} from '../backup/encrypt';
import { DUMP_TOOLS, openSession, parseEngine } from '../engines';
import { MONGO_CONSISTENCY_WARNING } from '../engines/mongodb';
import { AgentError, UsageError } from '../shared/errors';
import { ProgressReporter, log } from '../shared/log';
import { ProcessPipeline, StageSpec } from '../shared/pipeline';
import { getText, headLastModified, headSize, putJson, setLegalHold } from '../shared/s3';
import { requireTools, toolVersion } from '../shared/tools';
import { StoredObject, StreamUpload, partSizeFor } from '../backup/upload';
import { AGENT_VERSION } from '../shared/version';

export const BACKUP_COMMAND: CommandSpec = {
  name: 'backup',
  summary: 'Dump a database, compress and encrypt it, and stream it to S3 with a manifest; then move latest.json.',
  options: {
    ...SOURCE_OPTIONS,
    'engine': { kind: OptionKind.STRING, placeholder: 'ENGINE', description: 'postgres, mysql (mariadb) or mongodb', required: true },
    ...RECIPIENT_OPTIONS,
    ...CONNECTION_OPTIONS,
    ...MONGODB_CONNECTION_OPTIONS,
    'expected-size': { kind: OptionKind.STRING, placeholder: 'BYTES', description: 'how large the database may grow (k/M/G suffixes); sizes the upload parts when it exceeds the server\'s own estimate' },
    'min-size': { kind: OptionKind.STRING, placeholder: 'BYTES', description: 'fail when the uncompressed dump is smaller (k/M/G suffixes; default 1)' },
    'compression-level': { kind: OptionKind.STRING, placeholder: 'N', description: `zstd level 1-19 (default ${DEFAULT_ZSTD_LEVEL})` },
    'legal-hold': { kind: OptionKind.FLAG, description: 'once latest.json names this backup, place an Object Lock legal hold on its objects (the bucket needs Object Lock); older backups keep theirs until the hold keeper releases them' },
    'binlog-coordinates': { kind: OptionKind.FLAG, description: 'MariaDB whose binlogs are streamed: record in the manifest where the dump\'s consistent snapshot sits in the binlog (mariadb-dump --master-data=2 --gtid, no global read lock), where a point-in-time restore starts replaying' },
    'json': { kind: OptionKind.FLAG, description: 'print the result as JSON' },
  },
};

export interface BackupResult {
  readonly source: string;
  readonly bucket: string;
  readonly key: string;
  readonly manifestKey: string;
  readonly tier: Tier;
  readonly size: number;
  readonly dumpSize: number;
  readonly sha256: string;
  readonly tables: number;
  readonly rows: number;
  readonly durationSeconds: number;
  readonly latestMoved: boolean;
  readonly warnings: readonly string[];
  /** With --binlog-coordinates: where the dump sits in the server's binlog. */
  readonly binlog?: BinlogCoordinates;
}

export interface BackupDeps {
  readonly s3: S3Client;
  readonly secrets?: SecretsManagerClient;
}

/** Runs a pipeline into one object; kills the pipeline and aborts the upload on any failure. */
export async function store(deps: BackupDeps, bucket: string, key: string, tier: Tier, partSize: number,
  stages: readonly StageSpec[], options: {
    readonly input?: Readable;
    /** The last check, once every stage exited 0 and before the object completes; throw to refuse it. */
    readonly beforeComplete?: (pipeline: ProcessPipeline) => void;
    readonly onStart?: (upload: StreamUpload) => void;
  } = {}): Promise<StoredObject> {
  const pipeline = new ProcessPipeline(stages, { input: options.input, captureOutput: true });
  const upload = new StreamUpload({
    s3: deps.s3, bucket, key, tags: { [TIER_TAG]: tier }, partSize, source: pipeline.output!, producers: pipeline,
    beforeComplete: () => options.beforeComplete?.(pipeline),
  });
  options.onStart?.(upload);
  try {
    return await upload.done();
  } finally {
    pipeline.kill();
  }
}

/**
 * When the backup latest.json names started, as far as S3 can vouch for it: the startedAt the pointer states, but
 * never later than the LastModified of the backup object it names. S3 sets that time, not the writer, and a
 * backup's object is stored after it started, so an honest pointer keeps its own startedAt (overlapping runs are
 * ordered by when they started, to the millisecond) while a forged future one (2099, naming an old key) counts
 * from when its object was really stored. A pointer whose object is gone counts as before any backup.
 */
async function vouchedStart(s3: S3Client, bucket: string, latest: LatestPointer): Promise<number> {
  const stored = await headLastModified(s3, bucket, latest.key);
  if (!stored) return -Infinity;
  // Last-Modified has whole seconds: the object was stored before the end of that second.
  const storedBy = stored.getTime() + 999;
  const stated = Date.parse(latest.startedAt);
  return Number.isNaN(stated) ? storedBy : Math.min(stated, storedBy);
}

/**
 * Moves latest.json to this backup, unless a backup that started later is already there. Forward-only by times a
 * writer cannot forge: this run's own start against the current backup's start as S3 vouches for it (vouchedStart),
 * so a pointer forged into the future cannot wedge honest runs, and a backup that started before the current one
 * (an overlapping run that finished later) still does not replace it.
 */
export async function advanceLatest(s3: S3Client, bucket: string, key: string, pointer: LatestPointer): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await getText(s3, bucket, key);
    const latest = current ? parseLatest(current.text, `s3://${bucket}/${key}`) : undefined;
    if (latest && await vouchedStart(s3, bucket, latest) > Date.parse(pointer.startedAt)) {
      log.info('latest.json already names a backup that started later; leaving it', { latest: latest.key });
      return false;
    }
    // Conditional write: a concurrent run that moved the pointer in between makes us re-read.
    if (await putJson(s3, bucket, key, pointer, { ifMatch: current?.etag ?? '*' })) return true;
    log.info('latest.json changed while moving it; reading it again', { attempt: attempt + 1 });
  }
  throw new AgentError(`latest.json at s3://${bucket}/${key} kept changing under concurrent backups; the backup and its manifest are stored`);
}

/**
 * Keeps the last good backup alive however old it gets (design §3): a legal hold on the backup latest.json now
 * names (dump, companions, manifest). Placing it must succeed. The backup never releases a hold: the previous
 * backup keeps its own until the hold keeper, which trusts restore-test proof rather than pointers, releases it
 * (the bucket policy lets no one else release one).
 */
export async function placeLegalHold(s3: S3Client, bucket: string, held: readonly string[]): Promise<void> {
  for (const key of held) {
    try {
      await setLegalHold(s3, bucket, key, true);
    } catch (err) {
      throw new AgentError(`the backup s3://${bucket}/${held[0]} is stored and latest.json names it, but its legal hold could not be ` +
        `placed, so age-based expiry could remove it if backups stop: ${(err as Error).message}. The previous backup keeps its hold; ` +
        'check that the bucket has Object Lock and the task role allows s3:PutObjectLegalHold, or run without --legal-hold');
    }
  }
  log.info('legal hold placed', { keys: held.join(' ') });
}

export async function runBackup(args: ParsedArgs, deps: BackupDeps): Promise<BackupResult> {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const engine: Engine = parseEngine(args.requiredString('engine'));
  const bucket = args.requiredString('bucket');
  const prefix = args.string('prefix');
  const recipient: Recipient = recipientFromArgs(args);
  const minSize = args.size('min-size') ?? 1;
  const expectedSize = args.size('expected-size') ?? 0;
  const legalHold = args.flag('legal-hold');
  const level = Number(args.string('compression-level') ?? DEFAULT_ZSTD_LEVEL);
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new UsageError(`--compression-level must be 1 to 19 (got '${args.string('compression-level')}')`);
  const binlogCoordinates = args.flag('binlog-coordinates');
  if (binlogCoordinates && engine !== Engine.MYSQL) {
    throw new UsageError('--binlog-coordinates is for MariaDB sources whose binlogs are streamed; a PostgreSQL source\'s point in time comes from base backups and WAL');
  }

  requireTools([...DUMP_TOOLS[engine], 'zstd', 'age']);
  const connection = await resolveConnection(engine, args, process.env, deps.secrets);
  const session = openSession(engine, connection);
  const warnings: string[] = [];
  try {
    const facts = await session.inspect();
    if (facts.tables.length === 0) {
      const what = engine === Engine.MONGODB ? 'collections' : 'tables';
      throw new AgentError(`database '${connection.database}' has no ${what}: refusing to store an empty backup (is --database right?)`);
    }
    if (engine === Engine.MONGODB) warnings.push(MONGO_CONSISTENCY_WARNING);
    const startedAt = new Date();
    const latestAt = latestKey(prefix, source);
    const previous = await getText(deps.s3, bucket, latestAt);
    const previousStart = previous ? new Date(parseLatest(previous.text, `s3://${bucket}/${latestAt}`).startedAt) : undefined;
    const tier = tierFor(startedAt, previousStart);
    const key = backupKey(prefix, source, startedAt, session.format);
    // The larger of the server's estimate and the operator's: too small a part size fails past 10,000 parts.
    const estimatedBytes = Math.max(facts.estimatedBytes, expectedSize);
    const partSize = partSizeFor(estimatedBytes);
    log.info('backup started', { source, engine, key, tier, database: connection.database, estimatedBytes, partSize });

    const job = await session.startDump({ binlogCoordinates });
    let dumpBytes = 0;
    let progress: ProgressReporter | undefined;
    let stored: StoredObject;
    let tables: TableCount[];
    let binlog: BinlogCoordinates | undefined;
    try {
      stored = await store(deps, bucket, key, tier, partSize, [job.stage, compressStage(level), encryptStage(recipient)], {
        beforeComplete: (pipeline) => {
          // A dump that is not whole (an archive cut short) never completes its object, let alone becomes latest.
          job.checkComplete?.();
          dumpBytes = compressedInputBytes(pipeline.stderrOf('zstd'));
          if (dumpBytes < minSize) throw new AgentError(`the dump is ${dumpBytes} bytes, under the minimum of ${minSize} (--min-size): refusing to store it`);
        },
        // The dump itself flows process to process; what the agent sees is the encrypted stream.
        onStart: (upload) => {
          progress = new ProgressReporter('dump', () => ({ bytes: upload.streamedBytes, uploadedBytes: upload.uploadedBytes }));
        },
      });
      tables = await job.rowCounts();
      binlog = job.binlogCoordinates?.();
      if (binlog) log.info('the dump\'s binlog coordinates', { ...binlog });
    } finally {
      progress?.stop();
      await job.release();
    }
    const storedSize = await headSize(deps.s3, bucket, key);
    if (storedSize !== stored.size) {
      throw new AgentError(`s3://${bucket}/${key} holds ${storedSize ?? 'no'} bytes but ${stored.size} were streamed: not recording this backup`);
    }

    const companions: Companion[] = [];
    const globals = await session.captureGlobals();
    if ('sql' in globals) {
      const object = await store(deps, bucket, globalsKeyFor(key), tier, partSizeFor(0), [compressStage(level), encryptStage(recipient)],
        { input: Readable.from([Buffer.from(globals.sql)]) });
      companions.push({ kind: 'globals', key: object.key, size: object.size, sha256: object.sha256 });
    } else {
      warnings.push(`roles and grants were not captured: ${globals.notCapturedReason}`);
      log.warn('roles and grants were not captured; restores will need them recreated by hand', { reason: globals.notCapturedReason });
    }

    const finishedAt = new Date();
    const manifest: Manifest = {
      formatVersion: MANIFEST_FORMAT_VERSION, source, engine, database: connection.database, serverVersion: facts.serverVersion,
      toolVersions: { ...facts.toolVersions, zstd: toolVersion('zstd', '-V'), age: toolVersion('age'), restorable: AGENT_VERSION },
      tier, startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), key, format: session.format,
      size: stored.size, sha256: stored.sha256, dumpSize: dumpBytes, recipientFingerprint: recipient.fingerprint,
      tables, companions, globals: 'sql' in globals ? { captured: true } : { captured: false, reason: globals.notCapturedReason }, warnings,
      ...(binlog ? { binlog } : {}),
    };
    const manifestKey = manifestKeyFor(key);
    if (!await putJson(deps.s3, bucket, manifestKey, manifest, { tags: { [TIER_TAG]: tier }, ifMatch: '*' })) {
      throw new AgentError(`a manifest already exists at s3://${bucket}/${manifestKey}: two backups started in the same second?`);
    }
    const latestMoved = await advanceLatest(deps.s3, bucket, latestAt, {
      formatVersion: MANIFEST_FORMAT_VERSION, source, key, manifestKey, startedAt: manifest.startedAt, finishedAt: manifest.finishedAt,
      tier, size: stored.size, sha256: stored.sha256,
    });
    // Only the backup latest.json names is held: a newer one already there holds itself.
    if (legalHold && latestMoved) await placeLegalHold(deps.s3, bucket, [key, ...companions.map((c) => c.key), manifestKey]);
    const durationSeconds = (finishedAt.getTime() - startedAt.getTime()) / 1000;
    log.info('backup finished', { key, size: stored.size, dumpSize: dumpBytes, durationSeconds, latestMoved });
    return {
      source, bucket, key, manifestKey, tier, size: stored.size, dumpSize: dumpBytes, sha256: stored.sha256, tables: tables.length,
      rows: tables.reduce((sum, t) => sum + t.rows, 0), durationSeconds, latestMoved, warnings, ...(binlog ? { binlog } : {}),
    };
  } finally {
    await session.close();
  }
}

export function formatBackupResult(r: BackupResult): string {
  return `backed up ${r.source}: s3://${r.bucket}/${r.key} (${r.tier}, ${r.size} bytes stored from a ${r.dumpSize}-byte dump, ` +
    `${r.tables} tables, ${r.rows} rows, ${r.durationSeconds.toFixed(1)} s)${r.latestMoved ? '' : '; latest.json left at a newer backup'}` +
    (r.binlog ? `; binlog coordinates ${r.binlog.file}:${r.binlog.position}${r.binlog.gtid ? ` (GTID ${r.binlog.gtid})` : ''}, server id ${r.binlog.serverId}` : '');
}
