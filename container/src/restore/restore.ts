/**
 * The restore path, shared by `restore` and `restore-test`: select the backup, check the target,
 * wait for an archived object if asked, apply the roles, then download → verify → decrypt →
 * decompress → load, streaming (one job) or spooled to disk (parallel jobs), with timings.
 *
 * Nothing half-done is ever reported as good: the stored bytes must match the manifest's SHA-256,
 * every process must exit 0, and any failure after the target was touched says not to trust it.
 */
import { createReadStream, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { Engine, Manifest, TableCount } from '../../../lib/contract';
import { RetrievalOptions, ensureReadable } from './archive';
import { onAbort } from '../shared/cleanup';
import { Connection, describeConnection } from '../shared/connection';
import { decompressStage, decryptStage, explainDecryptFailure, identityMatches } from './decrypt';
import { BackupLocation, ReadPin, SelectedBackup, VerifyingTap, downloadInto, progressSample, selectBackup } from './download';
import { EngineSession, GlobalsApplied, GlobalsPlan, RESTORE_TOOLS, openSession } from '../engines';
import { DumpPeek, LoadPlan, Refusal, RestoreStageOptions } from '../engines/engine';
import { majorOf } from '../engines/postgres';
import { AgentError, UsageError } from '../shared/errors';
import { ProgressReporter, log } from '../shared/log';
import { ProcessPipeline, StageSpec } from '../shared/pipeline';
import { requireTools, toolVersion } from '../shared/tools';

export interface RestoreRequest {
  readonly location: BackupLocation;
  /** An age identity file (see identity.ts for secrets). */
  readonly identityFile: string;
  /** The target's connection, resolved once the manifest says which engine it is. */
  readonly connect: (engine: Engine) => Promise<Connection>;
  /** 1 streams; more spools the decrypted dump to `spoolDir` and loads it in parallel where the engine can. */
  readonly jobs: number;
  readonly clean: boolean;
  readonly withGlobals: boolean;
  readonly spoolDir: string;
  readonly retrieval: RetrievalOptions;
  /**
   * A restore test into a scratch database: the dump is downloaded, verified and decrypted to `spoolDir` first, the
   * identity dropped (`dropIdentity`), and only then does any of the backup's SQL run, as a role without superuser rights.
   */
  readonly scratch?: boolean;
  /** Removes the identity (its file and the agent's copy); called once nothing more needs decrypting. */
  readonly dropIdentity?: () => void;
  /** Operator restores by a superuser: the role that owns what the load creates. */
  readonly owner?: string;
  /** Operator restores: run the backup's SQL with the connecting user's rights, whatever they are. */
  readonly asConnectedUser?: boolean;
  /** Runs after the load, through the connection that loaded (restore tests validate here), before the load's role is removed. */
  readonly whileLoaded?: (loaded: Connection) => Promise<void>;
}

export enum RestoreMode {
  /** S3 → age → zstd → the restore tool, with nothing on disk. */
  STREAMED = 'streamed',
  /** Decrypted to disk and verified first, then loaded (in parallel where the engine can). */
  SPOOLED = 'spooled',
}

export interface RestoreResult {
  readonly source: string;
  readonly bucket: string;
  readonly key: string;
  readonly versionId?: string;
  readonly engine: Engine;
  /** Where it went: user@host:port/database. */
  readonly target: string;
  readonly backupStartedAt: string;
  readonly mode: RestoreMode;
  readonly jobs: number;
  readonly size: number;
  readonly dumpSize: number;
  readonly sha256: string;
  readonly globals?: GlobalsApplied;
  /** What the load left out of the backup, by name, and why (the roles companion's refusals are in `globals`). */
  readonly refused: readonly Refusal[];
  /** What a privileged session installed for the load (allow-listed extensions). */
  readonly installed: readonly string[];
  /** Who ran the backup's SQL. */
  readonly loadedAs: string;
  /** The manifest's row counts, for whoever validates the restored database. */
  readonly tables: readonly TableCount[];
  readonly startedAt: string;
  readonly finishedAt: string;
  /** From the first S3 request to the end of the load: the restore's share of the RTO. */
  readonly durationSeconds: number;
  /** Spooled restores: download, check and decrypt to disk; then the load alone. */
  readonly spoolSeconds?: number;
  readonly loadSeconds: number;
}

const MiB = 1024 * 1024;
/** Room left beside the spooled dump, so that the disk is not filled to the last byte. */
const SPOOL_HEADROOM = 64 * MiB;

/** Why a dump goes to disk first: --jobs, or a restore test (which drops the identity before any of the backup's SQL runs). */
export enum SpoolReason {
  JOBS = 'jobs',
  RESTORE_TEST = 'restore-test',
}

/**
 * Why a spool directory cannot hold a dump, or undefined when it can. A restore test always spools: it decrypts and
 * verifies the whole dump into the task's scratch storage and drops the identity before loading, so the task needs
 * the dump's size plus 64 MiB free there (on ECS: the task's ephemeral storage, `ephemeralStorageGiB`, 20 GiB unless
 * raised, at most 200); with less, the test fails before touching the scratch database, saying how much it needs.
 */
export function spoolSpaceProblem(dir: string, dumpSize: number, freeBytes: number, reason: SpoolReason = SpoolReason.JOBS): string | undefined {
  const needed = dumpSize + SPOOL_HEADROOM;
  if (freeBytes >= needed) return undefined;
  const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
  if (reason === SpoolReason.RESTORE_TEST) {
    return `a restore test decrypts and verifies the dump on disk before loading it, so that no key is in reach while the backup's SQL runs: ` +
      `it needs ${gb(needed)} free in ${dir} (a ${gb(dumpSize)} dump plus headroom), only ${gb(freeBytes)} is free. Give the restore-test task ` +
      'more ephemeral storage (ephemeralStorageGiB, up to 200 GiB on Fargate), or point --spool-dir at a larger volume.';
  }
  return `--jobs spools the decrypted dump to disk: it needs ${gb(needed)} free in ${dir} (a ${gb(dumpSize)} dump plus headroom), ` +
    `only ${gb(freeBytes)} is free. Point --spool-dir at a larger volume, or restore without --jobs (streaming needs no disk).`;
}

function freeBytes(dir: string): number {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch (err) {
    throw new AgentError(`cannot use the spool directory ${dir}: ${(err as Error).message}`);
  }
}

/** A failure once the target may have been written to. */
function untrusted(cause: string, target: string, rolledBack: boolean): AgentError {
  return new AgentError(`${cause}\nThe restore into ${target} did not complete, and the target must not be trusted: ` +
    (rolledBack ? 'pg_restore ran in one transaction, which was rolled back, but check it before use. '
      : 'it may hold part of the backup. ') +
    'Drop it, or restore again with --clean from a good backup.');
}

/** A failure before anything was written to the target. */
function nothingRestored(err: unknown, target: string): unknown {
  if (!(err instanceof AgentError) || err instanceof UsageError) return err;
  return new AgentError(`${err.message}\nNothing was restored: ${target} is unchanged.`, err.exitCode);
}

async function checkTarget(session: EngineSession, target: string, clean: boolean): Promise<void> {
  const existing = await session.targetObjects();
  if (existing.length > 0 && !clean) {
    const shown = existing.slice(0, 5).join(', ') + (existing.length > 5 ? ', …' : '');
    throw new AgentError(`the target ${target} is not empty (${existing.length} objects: ${shown}): restoring into it would mix two ` +
      'databases. Restore into an empty database, or add --clean to drop and replace the objects the backup holds.');
  }
}

/** After an operator's load, for engines that compare counts (MongoDB): a difference means the target is not to be trusted. */
async function checkLoaded(session: EngineSession, tables: readonly TableCount[], target: string): Promise<void> {
  try {
    await session.checkLoaded?.(tables);
  } catch (err) {
    throw untrusted((err as Error).message, target, false);
  }
}

/** pg_restore reads dumps of its own major version or older only. */
function checkRestoreTool(manifest: Manifest): void {
  if (manifest.engine !== Engine.POSTGRES || !manifest.toolVersions.pg_dump) return;
  const local = toolVersion('pg_restore');
  if (majorOf(local) < majorOf(manifest.toolVersions.pg_dump)) {
    throw new AgentError(`${local} cannot read a dump made by ${manifest.toolVersions.pg_dump}: install the PostgreSQL ` +
      `${majorOf(manifest.toolVersions.pg_dump)} client tools (or newer) and put them first on PATH`);
  }
}

/** Downloads, checks and decrypts a small companion (the roles) into memory. */
async function readCompanion(s3: S3Client, backup: SelectedBackup, key: string, expected: { size: number; sha256: string },
  identityFile: string): Promise<string> {
  const where = `s3://${backup.bucket}/${key}`;
  const tap = new VerifyingTap(where, expected);
  await downloadInto(s3, backup.bucket, key, backup.companionVersionIds?.get(key), tap);
  const pipeline = new ProcessPipeline([decryptStage(identityFile), decompressStage()], { input: tap, captureOutput: true });
  const chunks: Buffer[] = [];
  pipeline.output!.on('data', (chunk: Buffer) => chunks.push(chunk));
  try {
    await pipeline.done;
  } catch (err) {
    throw tap.problem ? new AgentError(tap.problem) : explainDecryptFailure(err, where, undefined);
  }
  if (tap.problem) throw new AgentError(tap.problem);
  return Buffer.concat(chunks).toString('utf8');
}

async function readGlobals(s3: S3Client, backup: SelectedBackup, identityFile: string): Promise<string> {
  const { manifest } = backup;
  const companion = manifest.companions.find((c) => c.kind === 'globals');
  if (!companion) {
    throw new AgentError(`--with-globals: this backup has no roles companion (${manifest.globals.reason ?? 'roles were not captured'}); ` +
      'restore without --with-globals and recreate the roles by hand');
  }
  return readCompanion(s3, backup, companion.key, companion, identityFile);
}

async function applyGlobals(session: EngineSession, sql: string, database: string): Promise<GlobalsPlan> {
  const applied = await session.applyGlobals(sql, database);
  log.info('roles and grants applied', { created: applied.created.join(', '), skippedExisting: applied.skipped.join(', '), refused: applied.refused.length });
  return applied;
}

/**
 * A fresh read of the stream from its start, decrypted and decompressed, for an engine to look at what the dump
 * holds; the engine destroys it once it has read enough, which stops the processes and the download. Nothing is
 * verified here: what the look finds only decides what is left out, and the load itself is verified end to end.
 */
function peekStream(s3: S3Client, backup: SelectedBackup, identityFile: string, pin: ReadPin): { peek: DumpPeek; failure: () => Promise<unknown> } {
  let pipeline: ProcessPipeline | undefined;
  const where = `s3://${backup.bucket}/${backup.key}`;
  return {
    peek: {
      open: () => {
        const tap = new VerifyingTap(where, backup.manifest);
        pipeline = new ProcessPipeline([decryptStage(identityFile), decompressStage()], { input: tap, captureOutput: true });
        const running = pipeline;
        downloadInto(s3, backup.bucket, backup.key, backup.versionId, tap, pin).catch((err: unknown) => { tap.destroy(err as Error); running.kill(); });
        const output = running.output!;
        // An engine that reads to the end sees the end only once the stored bytes matched the manifest and every process
        // exited 0: otherwise the stream fails, so what it read (MongoDB reads the whole archive before loading) is vouched for.
        // One that stops early (pg_restore -l) destroys it, which stops the processes and the download.
        const vouched = new PassThrough();
        let settled = false;
        output.pipe(vouched, { end: false });
        let ended = false;
        output.on('end', () => { ended = true; });
        output.on('close', () => {
          void running.done.then(() => undefined, (err: unknown) => err).then((err) => {
            settled = true;
            const problem = tap.problem ?? (err ? (err as Error).message : undefined) ?? (ended ? undefined : `the decrypted stream of ${where} broke off`) ??
              (tap.bytes !== backup.manifest.size ? `${where} ended after ${tap.bytes} of ${backup.manifest.size} bytes` : undefined);
            if (problem) vouched.destroy(new AgentError(problem));
            else vouched.end();
          });
        });
        vouched.on('close', () => {
          if (settled) return;
          output.destroy();
          running.kill();
          tap.destroy();
        });
        return vouched;
      },
    },
    // Why the look failed, when age or the download did: a wrong identity is said in age's words.
    failure: async () => {
      const err = await pipeline?.done.then(() => undefined, (e: unknown) => e);
      if (!err) return undefined;
      const explained = explainDecryptFailure(err, where, identityMatches(identityFile, backup.manifest.recipientFingerprint));
      return explained === err ? undefined : explained;
    },
  };
}

/** Streams the object through age and zstd into the restore process; the stream ends only if the SHA-256 matched. */
async function streamRestore(s3: S3Client, backup: SelectedBackup, session: EngineSession, request: RestoreRequest,
  target: string, stage: (options: RestoreStageOptions) => StageSpec, pin: ReadPin): Promise<void> {
  const where = `s3://${backup.bucket}/${backup.key}`;
  // On a mismatch the consumers are stopped before the stream fails, so that pg_restore never commits.
  const tap = new VerifyingTap(where, backup.manifest, () => pipeline.kill());
  const pipeline = new ProcessPipeline([decryptStage(request.identityFile), decompressStage(), stage({ clean: request.clean })],
    { input: tap });
  try {
    await downloadInto(s3, backup.bucket, backup.key, backup.versionId, tap, pin);
  } catch (err) {
    pipeline.kill();
    await pipeline.done.catch(() => undefined);
    throw nothingRestored(err, target);
  }
  const progress = new ProgressReporter('restore', progressSample(tap, backup.manifest.size));
  const rolledBack = session.engine === Engine.POSTGRES;
  try {
    await pipeline.done;
  } catch (err) {
    if (tap.problem) throw untrusted(tap.problem, target, rolledBack);
    if (tap.downloadError) throw untrusted(`the download of ${where} failed: ${tap.downloadError.message}`, target, rolledBack);
    const explained = explainDecryptFailure(err, where, identityMatches(request.identityFile, backup.manifest.recipientFingerprint));
    throw untrusted((explained as Error).message, target, rolledBack);
  } finally {
    progress.stop();
  }
  if (tap.problem || tap.bytes !== backup.manifest.size) throw untrusted(tap.problem ?? `${where} ended early`, target, rolledBack);
}

interface Spool {
  readonly file: string;
  readonly spoolSeconds: number;
  remove(): void;
}

/** Downloads, checks and decrypts to a file first; only a dump whose SHA-256 matched reaches the target. */
async function spoolDump(s3: S3Client, backup: SelectedBackup, request: RestoreRequest, target: string): Promise<Spool> {
  const { manifest } = backup;
  const where = `s3://${backup.bucket}/${backup.key}`;
  const problem = spoolSpaceProblem(request.spoolDir, manifest.dumpSize, freeBytes(request.spoolDir),
    request.scratch ? SpoolReason.RESTORE_TEST : SpoolReason.JOBS);
  if (problem) throw new AgentError(`${problem}\nNothing was restored: ${target} is unchanged.`);
  const dir = mkdtempSync(join(request.spoolDir, 'restorable-spool-'));
  const forget = onAbort(() => rmSync(dir, { recursive: true, force: true }));
  const remove = () => { rmSync(dir, { recursive: true, force: true }); forget(); };
  const file = join(dir, `dump.${manifest.format}`);
  const started = Date.now();
  try {
    const tap = new VerifyingTap(where, manifest);
    await downloadInto(s3, backup.bucket, backup.key, backup.versionId, tap).catch((err: unknown) => { throw nothingRestored(err, target); });
    const decrypt = new ProcessPipeline([decryptStage(request.identityFile), decompressStage(file)], { input: tap });
    const progress = new ProgressReporter('download', progressSample(tap, manifest.size));
    try {
      await decrypt.done;
    } catch (err) {
      if (tap.problem) throw new AgentError(`${tap.problem}\nFound before the target was touched: ${target} is unchanged.`);
      if (tap.downloadError) throw new AgentError(`the download of ${where} failed: ${tap.downloadError.message}\nNothing was restored: ${target} is unchanged.`);
      const explained = explainDecryptFailure(err, where, identityMatches(request.identityFile, manifest.recipientFingerprint));
      throw new AgentError(`${(explained as Error).message}\nNothing was restored: ${target} is unchanged.`);
    } finally {
      progress.stop();
    }
    if (tap.problem) throw new AgentError(`${tap.problem}\nFound before the target was touched: ${target} is unchanged.`);
    const spoolSeconds = (Date.now() - started) / 1000;
    log.info('dump spooled and verified', { file, seconds: spoolSeconds });
    return { file, spoolSeconds, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/** Loads a spooled dump: in parallel where the engine can, otherwise through the restore tool's stdin. */
async function loadSpooled(session: EngineSession, request: RestoreRequest, spool: Spool, target: string,
  stage: (options: RestoreStageOptions) => StageSpec): Promise<void> {
  if (!session.parallelRestore && request.jobs > 1) {
    log.warn(`${session.engine} loads ${session.engine === Engine.MYSQL ? 'a SQL dump in one session' : 'its archive through one mongorestore'}: --jobs ${request.jobs} verified the dump before touching the target, and loads it with one job`);
  }
  const load = new ProcessPipeline([stage({ clean: request.clean, file: spool.file, jobs: request.jobs })],
    session.parallelRestore ? {} : { input: createReadStream(spool.file) });
  try {
    await load.done;
  } catch (err) {
    throw untrusted((err as Error).message, target, false);
  }
}

export async function restoreBackup(request: RestoreRequest, deps: { readonly s3: S3Client }): Promise<RestoreResult> {
  const started = Date.now();
  const backup = await selectBackup(deps.s3, request.location);
  const { manifest } = backup;
  requireTools(['age', 'zstd', ...RESTORE_TOOLS[manifest.engine]]);
  checkRestoreTool(manifest);
  const connection = await request.connect(manifest.engine);
  const target = describeConnection(connection);
  const session = openSession(manifest.engine, connection, { sourceDatabase: manifest.database, tables: manifest.tables });
  try {
    await checkTarget(session, target, request.clean);
    const companion = manifest.companions.find((c) => c.kind === 'globals');
    try {
      await ensureReadable(deps.s3, backup.bucket, backup.key, backup.versionId, request.retrieval);
      if (request.withGlobals && companion) await ensureReadable(deps.s3, backup.bucket, companion.key, backup.companionVersionIds?.get(companion.key), request.retrieval);
    } catch (err) {
      throw nothingRestored(err, target);
    }
    // Retrieval may have taken hours: look again.
    if (request.retrieval.wait) await checkTarget(session, target, request.clean);

    log.info('restore started', { key: backup.key, target, jobs: request.jobs, clean: request.clean, withGlobals: request.withGlobals, scratch: request.scratch ?? false });
    const loadStarted = Date.now();
    // Everything that needs the identity happens first: a restore test then drops it before any of the backup's SQL runs.
    const spool = request.jobs > 1 || request.scratch ? await spoolDump(deps.s3, backup, request, target) : undefined;
    let plan: GlobalsPlan | undefined;
    let load: LoadPlan | undefined;
    let loaded = 0;
    // A streamed restore reads the object twice (its table of contents, then the load): both reads are of one version.
    const pin: ReadPin = {};
    try {
      const planLoad = async (createdRoles: readonly string[]): Promise<LoadPlan | undefined> => {
        if (!session.planLoad) return undefined;
        const peeked = spool ? undefined : peekStream(deps.s3, backup, request.identityFile, pin);
        try {
          return await session.planLoad(spool ? { file: spool.file } : peeked!.peek, {
            scratch: request.scratch ?? false, createdRoles, owner: request.owner, asConnectedUser: request.asConnectedUser ?? false,
          });
        } catch (err) {
          throw nothingRestored((await peeked?.failure()) ?? err, target);
        }
      };
      // An operator's restore decides who loads (and refuses a superuser) before it changes anything, roles included.
      if (!request.scratch) load = await planLoad([]);
      const globalsSql = request.withGlobals ? await readGlobals(deps.s3, backup, request.identityFile) : undefined;
      if (request.scratch) {
        request.dropIdentity?.();
        log.info('identity dropped: the dump is verified and decrypted on disk, and the backup\'s SQL runs with no key in reach');
      }
      plan = globalsSql !== undefined ? await applyGlobals(session, globalsSql, manifest.database) : undefined;
      // A restore test's loading role may act as the roles the companion created: planned once they exist.
      if (request.scratch) load = await planLoad(plan?.created ?? []);
      const stage = load ? (o: RestoreStageOptions) => load!.stage(o) : (o: RestoreStageOptions) => session.restoreStage(o);
      if (spool) await loadSpooled(session, request, spool, target, stage);
      else await streamRestore(deps.s3, backup, session, request, target, stage, pin);
      await plan?.afterLoad();
      // Restore tests compare counts themselves, and report a difference in their own words.
      if (!request.scratch) await checkLoaded(session, manifest.tables, target);
      loaded = Date.now();
      await request.whileLoaded?.(load?.connection ?? connection);
    } finally {
      spool?.remove();
      await load?.release();
    }
    const globals: GlobalsApplied | undefined = plan && { created: plan.created, skipped: plan.skipped, refused: plan.refused };
    const finished = Date.now();
    const result: RestoreResult = {
      source: manifest.source, bucket: backup.bucket, key: backup.key, versionId: backup.versionId, engine: manifest.engine, target,
      backupStartedAt: manifest.startedAt, mode: spool ? RestoreMode.SPOOLED : RestoreMode.STREAMED, jobs: request.jobs, size: manifest.size,
      dumpSize: manifest.dumpSize, sha256: manifest.sha256, globals, refused: load?.refused ?? [], installed: load?.installed ?? [],
      loadedAs: load?.loadedAs ?? connection.user, tables: manifest.tables,
      startedAt: new Date(started).toISOString(), finishedAt: new Date(finished).toISOString(), durationSeconds: (finished - started) / 1000,
      spoolSeconds: spool?.spoolSeconds, loadSeconds: (loaded - loadStarted) / 1000 - (spool?.spoolSeconds ?? 0),
    };
    log.info('restore finished', { key: backup.key, target, durationSeconds: result.durationSeconds });
    return result;
  } finally {
    await session.close();
  }
}
