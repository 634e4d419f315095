/**
 * `restorable verify`: is this backup what its manifest says, and can it be read to the end?
 * Always: the stored bytes' size and SHA-256 against the manifest, and its companions'. With an identity:
 * decrypt, decompress and read the dump completely (pg_restore -f /dev/null, which fails on a truncated
 * dump where --list passes; for SQL, mysqldump's completion line and the row counts; for a mongodump archive, its
 * structure to the last collection's end and the document counts), and its size.
 */
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Engine, Manifest } from '../../../lib/contract';
import { ARCHIVE_OPTIONS, ensureReadable, retrievalOptions } from '../restore/archive';
import { CommandSpec, OptionKind, ParsedArgs } from '../shared/args';
import { decompressStage, decryptStage, explainDecryptFailure, identityMatches } from '../restore/decrypt';
import { SELECTION_OPTIONS, SelectedBackup, VerifyingTap, backupLocation, downloadInto, progressSample, selectBackup } from '../restore/download';
import { SqlRowCounter } from '../engines/sql-row-counter';
import { MongoArchiveCounter, archiveCountProblems, foreignNamespaces } from '../engines/mongo-archive';
import { AgentError } from '../shared/errors';
import { IDENTITY_OPTIONS, resolveIdentity } from '../restore/identity';
import { ProgressReporter, log } from '../shared/log';
import { ProcessPipeline, StageSpec } from '../shared/pipeline';
import { requireTools } from '../shared/tools';

export const VERIFY_COMMAND: CommandSpec = {
  name: 'verify',
  summary: 'Check a backup against its manifest (size, SHA-256); with an identity, also decrypt and read the whole dump.',
  options: {
    ...SELECTION_OPTIONS,
    ...IDENTITY_OPTIONS,
    ...ARCHIVE_OPTIONS,
    json: { kind: OptionKind.FLAG, description: 'print the result as JSON' },
  },
};

export interface VerifyResult {
  readonly source: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly size: number;
  readonly sha256: string;
  /** What was checked, in words, each of which passed. */
  readonly checks: readonly string[];
  /** Whether the dump was decrypted and read to its end. */
  readonly readFully: boolean;
  readonly durationSeconds: number;
}

/** mysqldump's last line; --skip-dump-date leaves out the date after it. */
const MYSQL_COMPLETION = '-- Dump completed';

/** How a dump is read to its end: by a program, or in node with a check at the end. */
function dumpReader(manifest: Manifest): { stage?: StageSpec; inspect: (chunk: Buffer) => void; problems: () => string[] } {
  if (manifest.engine === Engine.POSTGRES) {
    return { stage: { name: 'pg_restore', command: 'pg_restore', args: ['-f', '/dev/null'] }, inspect: () => undefined, problems: () => [] };
  }
  if (manifest.engine === Engine.MONGODB) {
    const archive = new MongoArchiveCounter();
    return { inspect: (chunk) => archive.write(chunk), problems: () => [
      ...archiveCountProblems(archive, manifest.tables, manifest.database), ...foreignNamespaces(archive, manifest.database)] };
  }
  const counter = new SqlRowCounter();
  let tail = '';
  return {
    inspect: (chunk) => {
      counter.write(chunk);
      tail = (tail + chunk.subarray(-256).toString('utf8')).slice(-256);
    },
    problems: () => {
      if (!tail.includes(MYSQL_COMPLETION)) return [`the SQL dump does not end with mysqldump's '${MYSQL_COMPLETION}' line: it is incomplete`];
      const counted = counter.result();
      return manifest.tables.filter((t) => (counted.get(t.table) ?? 0) !== t.rows)
        .map((t) => `table ${t.table}: the dump holds ${counted.get(t.table) ?? 0} rows, the manifest recorded ${t.rows}`);
    },
  };
}

/**
 * Lets the tap run to its end (or its failure). finished() also settles for a tap that has already ended or
 * failed, where waiting for its 'end' event would wait forever and let the process exit 0 with nothing said.
 */
async function readToEnd(tap: VerifyingTap): Promise<void> {
  tap.resume();
  await finished(tap, { writable: false });
}

/** Hashes a companion (the roles) against the manifest. */
async function checkCompanion(s3: S3Client, backup: SelectedBackup, key: string, expected: { size: number; sha256: string }): Promise<void> {
  const tap = new VerifyingTap(`s3://${backup.bucket}/${key}`, expected);
  await downloadInto(s3, backup.bucket, key, backup.companionVersionIds?.get(key), tap);
  try {
    await readToEnd(tap);
  } catch (err) {
    throw tap.problem ? new AgentError(tap.problem) : new AgentError(`reading s3://${backup.bucket}/${key} failed: ${(err as Error).message}`);
  }
}

export async function runVerify(args: ParsedArgs, deps: { readonly s3: S3Client; readonly secrets?: () => SecretsManagerClient }): Promise<VerifyResult> {
  const started = Date.now();
  const location = backupLocation(args);
  const wantsIdentity = args.string('identity-file') !== undefined || args.string('identity-secret-id') !== undefined;
  const identity = wantsIdentity
    ? await resolveIdentity(args.string('identity-file'), args.string('identity-secret-id'), deps.secrets ?? (() => new SecretsManagerClient({})))
    : undefined;
  try {
    const backup = await selectBackup(deps.s3, location);
    const { manifest } = backup;
    const where = `s3://${backup.bucket}/${backup.key}`;
    const reader = identity ? dumpReader(manifest) : undefined;
    if (identity) requireTools(['age', 'zstd', ...(reader?.stage ? [reader.stage.command] : [])]);
    await ensureReadable(deps.s3, backup.bucket, backup.key, backup.versionId, retrievalOptions(args));

    let pipeline: ProcessPipeline | undefined;
    const tap = new VerifyingTap(where, manifest, () => pipeline?.kill());
    await downloadInto(deps.s3, backup.bucket, backup.key, backup.versionId, tap);
    const progress = new ProgressReporter('verify', progressSample(tap, manifest.size));
    let dumpBytes = 0;
    try {
      if (!identity || !reader) {
        await readToEnd(tap);
      } else {
        // The decrypting pipeline reads a copy, so that the hash runs to the end even when age gives up early.
        const input = new PassThrough();
        tap.pipe(input);
        const count = (chunk: Buffer) => { dumpBytes += chunk.length; reader.inspect(chunk); };
        pipeline = new ProcessPipeline(reader.stage
          ? [decryptStage(identity.file), { ...decompressStage(), inspect: count }, reader.stage]
          : [decryptStage(identity.file), decompressStage()], { input, captureOutput: !reader.stage });
        pipeline.output?.on('data', count);
        try {
          await pipeline.done;
        } catch (err) {
          tap.unpipe(input);
          await readToEnd(tap).catch(() => undefined);
          if (tap.problem) throw new AgentError(tap.problem);
          throw explainDecryptFailure(err, where, identityMatches(identity.file, manifest.recipientFingerprint));
        }
      }
    } catch (err) {
      if (tap.problem) throw new AgentError(tap.problem);
      if (tap.downloadError) throw new AgentError(`the download of ${where} failed: ${tap.downloadError.message}`);
      throw err;
    } finally {
      progress.stop();
    }
    if (tap.problem) throw new AgentError(tap.problem);
    const checks = [`${manifest.size} bytes with SHA-256 ${manifest.sha256}, as the manifest recorded`];
    for (const companion of manifest.companions) {
      await checkCompanion(deps.s3, backup, companion.key, companion);
      checks.push(`the ${companion.kind} companion matches its SHA-256`);
    }
    if (identity && reader) {
      const problems = [
        ...(dumpBytes !== manifest.dumpSize ? [`the decrypted dump is ${dumpBytes} bytes, the manifest recorded ${manifest.dumpSize}`] : []),
        ...reader.problems(),
      ];
      if (problems.length) throw new AgentError(`${where} decrypts, but the dump is not what the manifest recorded:\n${problems.join('\n')}`);
      checks.push(`decrypted and decompressed to ${dumpBytes} bytes, as the manifest recorded`,
        ({ [Engine.POSTGRES]: 'pg_restore read the whole archive', [Engine.MYSQL]: 'the SQL dump is complete and holds the manifest\'s row counts',
          [Engine.MONGODB]: 'the mongodump archive is complete and holds the manifest\'s document counts' })[manifest.engine]);
    }
    log.info('backup verified', { key: backup.key, readFully: Boolean(identity) });
    return {
      source: manifest.source, bucket: backup.bucket, key: backup.key, versionId: backup.versionId, size: manifest.size, sha256: manifest.sha256,
      checks, readFully: Boolean(identity), durationSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    identity?.release();
  }
}

export function formatVerifyResult(r: VerifyResult): string {
  return [`verified s3://${r.bucket}/${r.key}${r.versionId ? ` (version ${r.versionId})` : ''} in ${r.durationSeconds.toFixed(1)} s:`,
    ...r.checks.map((c) => `  ok  ${c}`),
    ...(r.readFully ? [] : ['  (give --identity-file or --identity-secret-id to also decrypt and read the dump)'])].join('\n');
}
