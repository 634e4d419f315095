/**
 * `restorable basebackup`: a PostgreSQL base backup for point-in-time recovery. `pg_basebackup -D - -Ft -X fetch`
 * (the data directory as one tar, with the WAL that makes it consistent, over a replication connection) → zstd → age →
 * S3 at `{source}/base/YYYY/MM/DD/{source}_{ts}Z.tar.zst.age`, then its manifest (start and end LSN, timeline, WAL
 * files, system identifier, read from the tar as it passes), then `{source}/base/latest.json`, moved forward only.
 * A tar cut short, or one without PG_VERSION, backup_label and pg_control, is refused and nothing is recorded.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  BASE_BACKUP_FORMAT_VERSION, BaseBackupManifest, BaseBackupPointer, Engine, TIER_TAG, baseBackupKey, baseLatestKey,
  manifestKeyFor, parseBaseBackupPointer, sourceNameProblem, tierFor,
} from '../../../lib/contract';
import { CommandSpec, OptionKind, ParsedArgs, SOURCE_OPTIONS } from '../shared/args';
import { CONNECTION_OPTIONS, resolveConnection } from '../shared/connection';
import { DEFAULT_ZSTD_LEVEL, RECIPIENT_OPTIONS, compressStage, encryptStage, recipientFromArgs } from '../backup/encrypt';
import { partSizeFor } from '../backup/upload';
import { libpqEnv } from '../engines/postgres';
import { AgentError, UsageError } from '../shared/errors';
import { ProgressReporter, log } from '../shared/log';
import { getText, headSize, putJson } from '../shared/s3';
import { requireTools, toolVersion } from '../shared/tools';
import { AGENT_VERSION } from '../shared/version';
import { TarScanner } from '../pitr/tar';
import { BACKUP_COMMAND, BackupResult, advanceLatest, placeLegalHold, store } from './backup';

export const BASEBACKUP_COMMAND: CommandSpec = {
  name: 'basebackup',
  summary: 'Take a PostgreSQL base backup (pg_basebackup -Ft -X fetch over a replication connection), compress and encrypt it, and stream it to ' +
    'S3 under {source}/base/ with a manifest; then move base/latest.json. Point-in-time restores start from these.',
  options: {
    ...SOURCE_OPTIONS,
    ...RECIPIENT_OPTIONS,
    ...CONNECTION_OPTIONS,
    'expected-size': BACKUP_COMMAND.options['expected-size'],
    'min-size': { kind: OptionKind.STRING, placeholder: 'BYTES', description: 'fail when the tar is smaller (k/M/G suffixes; default 1M)' },
    'compression-level': BACKUP_COMMAND.options['compression-level'],
    'legal-hold': { kind: OptionKind.FLAG, description: 'once base/latest.json names this base backup, place an Object Lock legal hold on it and its manifest' },
    'json': BACKUP_COMMAND.options.json,
  },
};

export interface BaseBackupResult extends Pick<BackupResult, 'source' | 'bucket' | 'key' | 'manifestKey' | 'tier' | 'size' | 'sha256' |
'durationSeconds' | 'latestMoved'> {
  readonly tarSize: number;
  readonly timeline: number;
  readonly startWalFile: string;
  readonly endWalFile: string;
}

export interface BaseBackupDeps {
  readonly s3: S3Client;
  readonly secrets?: SecretsManagerClient;
}

const MiB = 1024 * 1024;

/** What a base backup's tar says about where it sits in the WAL: backup_label, pg_control and its pg_wal/ entries. */
export interface BackupPosition {
  readonly serverVersion: string;
  readonly systemIdentifier: string;
  readonly timeline: number;
  readonly startLsn: string;
  readonly startWalFile: string;
  readonly endWalFile: string;
}

/** Reads a base backup's position from the files the tar holds; throws when one says something unexpected. */
export function backupPosition(tar: TarScanner): BackupPosition {
  const label = tar.kept.get('backup_label')!.toString('utf8');
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(label);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(label);
  if (!start || !timeline) throw new AgentError(`the base backup's backup_label does not state its start WAL location and timeline:\n${label}`);
  const control = tar.kept.get('global/pg_control')!;
  if (control.length < 8) throw new AgentError(`the base backup's global/pg_control is ${control.length} bytes: too short to hold a system identifier`);
  // ControlFileData starts with the database system identifier, a uint64 in the server's byte order.
  const systemIdentifier = control.readBigUInt64LE(0).toString();
  const segments = tar.entries.map((e) => /^pg_wal\/([0-9A-F]{24})$/.exec(e.name)?.[1]).filter((s): s is string => s !== undefined).sort();
  return {
    serverVersion: tar.kept.get('PG_VERSION')!.toString('utf8').trim(),
    systemIdentifier, timeline: Number(timeline[1]), startLsn: start[1], startWalFile: start[2],
    endWalFile: segments[segments.length - 1] ?? start[2],
  };
}

/** pg_basebackup -v says where the backup's WAL ends: `write-ahead log end point: 0/2000100`. */
function endLsnOf(stderr: string): string {
  const end = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr);
  if (!end) throw new AgentError(`pg_basebackup finished without stating its write-ahead log end point:\n${stderr.trim()}`);
  return end[1];
}

export async function runBaseBackup(args: ParsedArgs, deps: BaseBackupDeps): Promise<BaseBackupResult> {
  const source = args.requiredString('source');
  const nameProblem = sourceNameProblem(source);
  if (nameProblem) throw new UsageError(nameProblem);
  const bucket = args.requiredString('bucket');
  const prefix = args.string('prefix');
  const recipient = recipientFromArgs(args);
  const minSize = args.size('min-size') ?? MiB;
  const level = Number(args.string('compression-level') ?? DEFAULT_ZSTD_LEVEL);
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new UsageError(`--compression-level must be 1 to 19 (got '${args.string('compression-level')}')`);
  requireTools(['pg_basebackup', 'zstd', 'age']);
  // A replication connection names no database; the connection options still need one.
  const connection = await resolveConnection(Engine.POSTGRES, args, { PGDATABASE: 'postgres', ...process.env }, deps.secrets);

  const startedAt = new Date();
  const latestAt = baseLatestKey(prefix, source);
  const previous = await getText(deps.s3, bucket, latestAt);
  const previousStart = previous ? new Date(parseBaseBackupPointer(previous.text, `s3://${bucket}/${latestAt}`).startedAt) : undefined;
  const tier = tierFor(startedAt, previousStart);
  const key = baseBackupKey(prefix, source, startedAt);
  log.info('base backup started', { source, key, tier, host: connection.host, port: connection.port, user: connection.user });

  const tar = new TarScanner();
  let endLsn = '';
  let progress: ProgressReporter | undefined;
  const stored = await store(deps, bucket, key, tier, partSizeFor(args.size('expected-size') ?? 0), [
    {
      name: 'pg_basebackup', command: 'pg_basebackup',
      // -w: never wait for a password prompt; it comes from the secret or PGPASSWORD, in the environment.
      args: ['-D', '-', '-Ft', '-X', 'fetch', '--checkpoint=fast', '-v', '-w', '--label', `restorable ${source}`],
      env: libpqEnv(connection), inspect: (chunk) => tar.feed(chunk),
    },
    compressStage(level), encryptStage(recipient),
  ], {
    beforeComplete: (pipeline) => {
      const problem = tar.baseBackupProblem(minSize);
      if (problem) throw new AgentError(`${problem}: refusing to store it`);
      endLsn = endLsnOf(pipeline.stderrOf('pg_basebackup'));
    },
    onStart: (upload) => {
      progress = new ProgressReporter('basebackup', () => ({ tarBytes: tar.bytes, bytes: upload.streamedBytes, uploadedBytes: upload.uploadedBytes }));
    },
  }).finally(() => progress?.stop());
  const storedSize = await headSize(deps.s3, bucket, key);
  if (storedSize !== stored.size) {
    throw new AgentError(`s3://${bucket}/${key} holds ${storedSize ?? 'no'} bytes but ${stored.size} were streamed: not recording this base backup`);
  }
  const position = backupPosition(tar);
  const finishedAt = new Date();
  const manifest: BaseBackupManifest = {
    formatVersion: BASE_BACKUP_FORMAT_VERSION, kind: 'basebackup', source, engine: Engine.POSTGRES, ...position, endLsn,
    startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), tier, key, size: stored.size, sha256: stored.sha256,
    tarSize: tar.bytes, recipientFingerprint: recipient.fingerprint,
    toolVersions: { pg_basebackup: toolVersion('pg_basebackup'), zstd: toolVersion('zstd', '-V'), age: toolVersion('age'), restorable: AGENT_VERSION },
    warnings: [],
  };
  const manifestKey = manifestKeyFor(key);
  if (!await putJson(deps.s3, bucket, manifestKey, manifest, { tags: { [TIER_TAG]: tier }, ifMatch: '*' })) {
    throw new AgentError(`a manifest already exists at s3://${bucket}/${manifestKey}: two base backups started in the same second?`);
  }
  const pointer: BaseBackupPointer = {
    formatVersion: BASE_BACKUP_FORMAT_VERSION, source, key, manifestKey, startedAt: manifest.startedAt, finishedAt: manifest.finishedAt,
    tier, size: stored.size, sha256: stored.sha256, timeline: position.timeline, startWalFile: position.startWalFile,
  };
  const latestMoved = await advanceLatest(deps.s3, bucket, latestAt, pointer);
  if (args.flag('legal-hold') && latestMoved) await placeLegalHold(deps.s3, bucket, [key, manifestKey]);
  const durationSeconds = (finishedAt.getTime() - startedAt.getTime()) / 1000;
  log.info('base backup finished', { key, size: stored.size, tarSize: tar.bytes, startWalFile: position.startWalFile, endLsn, durationSeconds, latestMoved });
  return {
    source, bucket, key, manifestKey, tier, size: stored.size, tarSize: tar.bytes, sha256: stored.sha256, timeline: position.timeline,
    startWalFile: position.startWalFile, endWalFile: position.endWalFile, durationSeconds, latestMoved,
  };
}

export function formatBaseBackupResult(r: BaseBackupResult): string {
  return `base backup of ${r.source}: s3://${r.bucket}/${r.key} (${r.tier}, ${r.size} bytes stored from a ${r.tarSize}-byte tar, timeline ${r.timeline}, ` +
    `WAL ${r.startWalFile} to ${r.endWalFile}, ${r.durationSeconds.toFixed(1)} s)${r.latestMoved ? '' : '; base/latest.json left at a newer base backup'}`;
}
