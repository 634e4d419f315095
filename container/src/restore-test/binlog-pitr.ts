/**
 * The restore test of a MariaDB source whose binlogs are streamed (--binlog-pitr): a point-in-time restore to a recent
 * time (runBinlogPitrRestore: the newest dump with binlog coordinates before it, restored into the scratch database,
 * then the stored binlogs after its coordinates fetched, verified and replayed up to the target's second), checked:
 * replay reached the target (the last transaction applied at or before it, and not more than --pitr-max-gap before
 * it: the source's maxArchiveAge by default), every table the dump names present, the user's checks. Row counts are
 * not compared: the binlogs add to what the dump holds.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Engine, RestoreTestBinlogPitr } from '../../../lib/contract';
import { BinlogPitrOptions, BinlogPitrResult, runBinlogPitrRestore } from '../binlog-pitr/restore';
import { LATEST } from '../pitr/restore';
import { RestoreResult } from '../restore/restore';
import { BackupLocation } from '../restore/download';
import { OptionKind, OptionSpecs, ParsedArgs } from '../shared/args';
import { Connection } from '../shared/connection';
import { UsageError, redactor } from '../shared/errors';
import { UserCheck } from './checks';
import { BINLOG_PITR_FLAG, PitrTarget, RECENT_SECONDS, pitrTarget, recoveryProblems, tablesPresent } from './pitr';
import { Validation, openScratch, validateChecks } from './validate';

export const BINLOG_PITR_TEST_OPTIONS: OptionSpecs = {
  [BINLOG_PITR_FLAG]: {
    kind: OptionKind.FLAG,
    description: 'test a point-in-time restore of a MariaDB source whose binlogs are streamed: the newest dump with binlog coordinates before ' +
      '--pitr-to restored into --database, then its binlogs replayed up to that time',
  },
};

/** How far before the target the last transaction replayed may be by default: a binlog source's default maxArchiveAge. */
export const BINLOG_DEFAULT_MAX_GAP_SECONDS = 300;

/** The binlog PITR options, checked; undefined without --binlog-pitr. */
export function binlogPitrTestSettings(args: ParsedArgs, now: Date): PitrTarget | undefined {
  if (!args.flag(BINLOG_PITR_FLAG)) return undefined;
  if (args.string('pitr-dir') !== undefined) throw new UsageError('--binlog-pitr and --pitr-dir test different sources (binlogs of MariaDB, WAL of PostgreSQL): give one');
  return pitrTarget(args, now, BINLOG_DEFAULT_MAX_GAP_SECONDS);
}

const BINLOG_WORDS = {
  unknown: 'no binlog transaction after the dump\'s coordinates was replayed: the source committed nothing between the dump and the target, or its binlogs ' +
    `are not being streamed (for a source that may commit nothing for longer than ${RECENT_SECONDS} s, test with --pitr-to latest, pointInTimeTarget ` +
    '\'latest\' in RestoreTesting, or have it write a heartbeat)',
  stale: 'is the binlog streamer running?',
};

export interface BinlogPitrTestInput {
  readonly location: BackupLocation;
  readonly settings: PitrTarget;
  readonly identityFile: string;
  readonly dropIdentity: () => void;
  /** The scratch database: the dump is restored into it and the binlogs replayed there. */
  readonly connect: () => Promise<Connection>;
  readonly checks: readonly UserCheck[];
  /** Where the verified binlogs and the dump wait on disk. */
  readonly workDir?: string;
}

export interface BinlogPitrTestRun {
  readonly binlogPitr?: RestoreTestBinlogPitr;
  readonly dumpStartedAt?: string;
  /** The dump's restore: what it left out, for the report. */
  readonly dump?: RestoreResult;
  readonly target?: Connection;
  readonly validation?: Validation;
  readonly failures: readonly string[];
}

export type BinlogPitrRestore = (options: BinlogPitrOptions, deps: { s3: S3Client }) => Promise<BinlogPitrResult>;

/**
 * Restores to the target and checks it. Whatever stops it is a failure of the test, named with its step; a UsageError
 * is the caller's.
 */
export async function runBinlogPitrTest(input: BinlogPitrTestInput, s3: S3Client, restore: BinlogPitrRestore = runBinlogPitrRestore): Promise<BinlogPitrTestRun> {
  const { settings, location } = input;
  const failures: string[] = [];
  let step = 'the point-in-time restore failed';
  let target: Connection | undefined;
  try {
    const result = await restore({
      bucket: location.bucket, prefix: location.prefix, source: location.source, to: settings.to, identityFile: input.identityFile,
      dropIdentity: input.dropIdentity, scratch: true, workDir: input.workDir,
      connect: async () => {
        target = await input.connect();
        return target;
      },
    }, { s3 });
    input.dropIdentity();
    const binlogPitr: RestoreTestBinlogPitr = {
      targetTime: settings.to, recoveredTo: result.recoveredTo ?? '', dumpKey: result.dumpKey, binlogFilesReplayed: result.binlogFilesReplayed,
      // With no transaction replayed, the last one applied is the dump's snapshot.
      lastEvent: result.lastEvent ?? { file: result.dumpCoordinates.file, position: result.dumpCoordinates.position,
        ...(result.dumpCoordinates.gtid ? { gtid: result.dumpCoordinates.gtid } : {}) },
      restoreSeconds: result.restoreSeconds,
    };
    failures.push(...recoveryProblems(binlogPitr, settings, result.coveredTarget || settings.to === LATEST ? BINLOG_WORDS
      : { ...BINLOG_WORDS, stale: `the stored binlogs end before the target: ${BINLOG_WORDS.stale}` }));

    step = 'validating the point-in-time restore failed';
    const db = await openScratch(Engine.MYSQL, target!);
    let validation: Validation;
    try {
      // maxAge checks count back from the point recovered to, as they count from a dump's start.
      const anchor = binlogPitr.recoveredTo ? new Date(binlogPitr.recoveredTo) : settings.to === LATEST ? new Date() : new Date(settings.to);
      const tables = tablesPresent(result.dump.tables.map((t) => t.table), new Set(await db.tables()));
      const checked = await validateChecks(db, input.checks, anchor);
      validation = { tables, checks: checked.checks, rowsChecked: 0, failures: [...tables.filter((t) => !t.passed).map((t) => t.detail), ...checked.failures] };
    } finally {
      await db.close();
    }
    failures.push(...validation.failures);
    return { binlogPitr, dumpStartedAt: result.dumpStartedAt, dump: result.dump, target, validation, failures };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    failures.push(`${step}: ${redactor.redact(err instanceof Error ? err.message : String(err))}`);
    return { target, failures };
  } finally {
    input.dropIdentity();
  }
}
