/**
 * The binlog streamer: mariadb-binlog reads the server's binlogs as a replica does (--read-from-remote-server --raw
 * --stop-never) into the spool's live/ directory, and the streamer stores what it writes there (spool.ts, store.ts).
 *
 * - Before mariadb-binlog starts (and every time it starts again) the server is checked (server-checks.ts) and the spool
 *   is stored first, since mariadb-binlog rewrites the file it starts on from its first byte. It then resumes from the
 *   newest file in the spool. When it stops (a server restart, a lost connection) it is started again after 1 s, 2 s,
 *   4 s … up to 30 s; once it has been failing for longer than `retryForMs` the streamer gives up (exit 1: ECS starts
 *   a new task, which resumes from the spool).
 * - A file is closed once the next one exists in live/: it must end at a whole event (a cut event there is an error,
 *   never stored as good); it is stored whole, with its index, and removed. The growing file is stored every
 *   `partialIntervalMs` when it grew, up to its last whole event, and once more when the streamer stops. Files are
 *   walked as they grow, never re-read from their start to find their end, and never held in memory.
 * - A stream is one unbroken run of the server's binlogs. A new one begins (a new id and stream.json, from the server's
 *   oldest file) when the spool holds nothing (FIRST_START), when the file the streamer was on is gone from the server
 *   (PURGED), when the server's files went backwards or the re-fetched file was created at another time (RESET), and
 *   when the server_id differs or the re-fetched file does not repeat what was stored (SERVER_CHANGED).
 */
import { ChildProcess } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { BINLOG_FORMAT_VERSION, BinlogStream, BinlogStreamReason, binlogSequence, binlogStreamId } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { Backoff, Sleeper, describeExit, runLoggedChild } from '../shared/supervise';
import { BinlogFormatError, BinlogWalk, BinlogWalker, walkBinlogFile } from './events';
import { BinlogServerFacts, BinlogServerRefused, ServerQuery, checkBinlogServer } from './server-checks';
import { BinlogSpoolState, clearLive, liveDir, readSpoolState, spoolFiles, writeSpoolState } from './spool';
import { BinlogConflict, BinlogStore } from './store';

export interface StreamerSettings {
  readonly source: string;
  readonly spool: string;
  /** The streamer's own server id (mariadb-binlog --stop-never-slave-server-id). */
  readonly serverId: number;
  readonly partialIntervalMs: number;
  readonly retryForMs: number;
  /** The file a first stream starts from, instead of the server's oldest. */
  readonly startFile?: string;
  /** mariadb-binlog's connection arguments (host, port, user; never the password). */
  readonly connectionArgs: readonly string[];
  /** mariadb-binlog's environment (the password in MYSQL_PWD, never in argv). */
  readonly env: NodeJS.ProcessEnv;
  readonly query: ServerQuery;
  readonly store: BinlogStore;
}

export interface StreamSummary {
  readonly source: string;
  readonly spool: string;
  /** The stream stored into last. */
  readonly stream?: string;
  /** Streams begun by this run, with why. */
  readonly streamsStarted: ReadonlyArray<{ readonly stream: string; readonly reason: BinlogStreamReason; readonly detail: string }>;
  /** Closed files stored whole (and removed from the spool). */
  readonly files: number;
  readonly partials: number;
  /** The newest object stored: its file and bytes. */
  readonly last?: { readonly file: string; readonly bytes: number };
  /** Times mariadb-binlog was started again after it stopped. */
  readonly restarts: number;
  readonly stoppedBy?: string;
}

/** How often the spool is looked at. */
const POLL_MS = 250;
/** How long mariadb-binlog may take to exit after SIGTERM before it is killed. */
const EXIT_GRACE_MS = 10_000;

/** The growing file as walked so far. */
interface Growing {
  readonly file: string;
  readonly walker: BinlogWalker;
  read: number;
}

/** Errors that no retry mends: the streamer stops. */
function isFatal(err: unknown): boolean {
  return !(err instanceof AgentError) || err instanceof BinlogServerRefused || err instanceof BinlogFormatError || err instanceof BinlogConflict;
}

export class BinlogStreamer {
  private readonly sleeper = new Sleeper();
  private fatal?: AgentError;
  private stoppedBy?: string;
  private child?: ChildProcess;
  private state?: BinlogSpoolState;
  /** Set while the file resumed on must still be shown to repeat what was stored of it. */
  private pendingCheck?: BinlogSpoolState;
  /** Set when it did not: the next start begins a new stream. */
  private divergence?: { reason: BinlogStreamReason; detail: string };
  private growing?: Growing;
  private partialStored = new Map<string, number>();
  private nextPartialAt = 0;
  private exclusiveTail: Promise<unknown> = Promise.resolve();
  private readonly streamsStarted: Array<{ stream: string; reason: BinlogStreamReason; detail: string }> = [];
  private files = 0;
  private partials = 0;
  private restarts = 0;

  constructor(private readonly settings: StreamerSettings) {
    this.state = readSpoolState(settings.spool);
  }

  /** Streams until stop() or a failure past the retry bound; then stores what is left in the spool. */
  async run(): Promise<StreamSummary> {
    await Promise.all([this.supervise(), this.storeLoop()]);
    // mariadb-binlog has exited: what it wrote last is in the spool, and nothing writes there any more.
    try {
      await this.exclusive(() => this.storeSpool(true));
    } catch (err) {
      this.fatal ??= err instanceof AgentError ? err : new AgentError(`storing the spool's last binlog failed: ${(err as Error).message}`);
    }
    if (this.fatal) throw this.fatal;
    return {
      source: this.settings.source, spool: this.settings.spool, stream: this.state?.stream, streamsStarted: this.streamsStarted,
      files: this.files, partials: this.partials, last: this.state && this.state.bytes > 0 ? { file: this.state.file, bytes: this.state.bytes } : undefined,
      restarts: this.restarts, stoppedBy: this.stoppedBy,
    };
  }

  /** Stops streaming: mariadb-binlog exits, then the spool is stored a last time. */
  stop(reason: string): void {
    if (this.sleeper.stopped) return;
    log.info('stopping: mariadb-binlog exits, then the spool is stored', { reason });
    this.stoppedBy = reason;
    this.halt();
  }

  private halt(): void {
    this.sleeper.stop();
    this.stopChild();
  }

  private stopChild(): void {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS).unref();
    }
  }

  private giveUp(err: AgentError): void {
    this.fatal ??= err;
    this.halt();
  }

  /** Runs one spool operation at a time: the start's store and the periodic store never overlap. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusiveTail.then(fn, fn);
    this.exclusiveTail = run.catch(() => undefined);
    return run;
  }

  /** Keeps mariadb-binlog running until stopped or out of retries. */
  private async supervise(): Promise<void> {
    const backoff = new Backoff(this.settings.retryForMs);
    while (!this.sleeper.stopped) {
      const started = Date.now();
      let detail: string;
      try {
        const file = await this.exclusive(() => this.prepare());
        if (this.sleeper.stopped) return;
        log.info('mariadb-binlog starts', { file, stream: this.state!.stream });
        const exit = await runLoggedChild('mariadb-binlog', [
          '--no-defaults', '--read-from-remote-server', '--raw', '--stop-never', `--stop-never-slave-server-id=${this.settings.serverId}`,
          `--result-file=${liveDir(this.settings.spool)}/`, ...this.settings.connectionArgs, file,
        ], this.settings.env, (child) => { this.child = child; });
        if (this.sleeper.stopped) return;
        if (this.divergence) continue; // a new stream begins at once
        detail = `mariadb-binlog ${describeExit(exit)}`;
        this.restarts++;
      } catch (err) {
        if (isFatal(err)) {
          this.giveUp(err instanceof AgentError ? err : new AgentError(`binlog streaming failed: ${(err as Error).message}`));
          return;
        }
        detail = (err as Error).message;
      }
      const wait = backoff.failed(started);
      if (wait === undefined) {
        this.giveUp(new AgentError(`binlog streaming has kept failing for ${backoff.failingSeconds()} s, so the streamer gives up (a new task resumes ` +
          `from the spool): ${detail}. Check that the server is reachable and that the user may connect from here`));
        return;
      }
      log.warn('binlog streaming stopped; starting again', { detail, inSeconds: wait / 1000 });
      await this.sleeper.sleep(wait);
    }
  }

  /** Checks the server, stores the spool, and decides where mariadb-binlog starts (a new stream, when it cannot resume). */
  private async prepare(): Promise<string> {
    const facts = await checkBinlogServer(this.settings.query, this.settings.serverId);
    if (this.state && !this.divergence) await this.storeSpool(true);
    this.growing = undefined;
    const state = this.state;
    if (!state) return this.newStream(facts, BinlogStreamReason.FIRST_START, 'the spool held no stream: streaming starts from ' +
      `${this.settings.startFile ? `--start-file ${this.settings.startFile}` : 'the server\'s oldest binlog'}`);
    if (this.divergence) {
      const { reason, detail } = this.divergence;
      this.divergence = undefined;
      return this.newStream(facts, reason, detail);
    }
    if (facts.serverId !== state.serverId) {
      return this.newStream(facts, BinlogStreamReason.SERVER_CHANGED, `the server's server_id is ${facts.serverId}, the stream's was ${state.serverId}: ` +
        'this is another server, whose binlogs do not continue the stream\'s');
    }
    const files = spoolFiles(this.settings.spool);
    const resume = files[files.length - 1] ?? state.file;
    const names = facts.files.map((f) => f.name);
    if (!names.includes(resume)) {
      const first = names[0];
      const newest = names[names.length - 1];
      if (binlogSequence(resume) < binlogSequence(first)) {
        return this.newStream(facts, BinlogStreamReason.PURGED, `the server no longer has ${resume} (its oldest binlog is ${first}): it was purged before ` +
          `it was streamed whole, so the events after byte ${state.file === resume ? state.bytes : 0} of it are lost to point-in-time recovery`);
      }
      return this.newStream(facts, BinlogStreamReason.RESET, `the server's binlogs went back to ${newest} while the stream was at ${resume}: they were ` +
        'reset (RESET MASTER), so the same names now hold other events');
    }
    this.pendingCheck = state.file === resume && state.bytes > 0 ? state : undefined;
    // Stored already: removed, so that what live/ holds of it from now on is this run's alone (mariadb-binlog writes it
    // again from its first byte, and a check of the old copy while that begins would read a mix of the two).
    rmSync(join(liveDir(this.settings.spool), resume), { force: true });
    return resume;
  }

  private async newStream(facts: BinlogServerFacts, reason: BinlogStreamReason, detail: string): Promise<string> {
    const previous = this.state;
    const first = reason === BinlogStreamReason.FIRST_START && this.settings.startFile ? this.settings.startFile : facts.files[0].name;
    if (!facts.files.some((f) => f.name === first)) {
      throw new BinlogServerRefused(`--start-file ${first} is not on the server, which has ${facts.files[0].name} to ${facts.files[facts.files.length - 1].name}`);
    }
    clearLive(this.settings.spool);
    this.partialStored = new Map();
    this.pendingCheck = undefined;
    for (;;) {
      let id = binlogStreamId(new Date());
      if (previous && id <= previous.stream) {
        await new Promise((r) => setTimeout(r, 1000));
        id = binlogStreamId(new Date());
      }
      const stream: BinlogStream = {
        formatVersion: BINLOG_FORMAT_VERSION, source: this.settings.source, stream: id, startedAt: new Date().toISOString(), serverId: facts.serverId,
        serverVersion: facts.version, firstFile: first, reason, detail,
        ...(previous && previous.bytes > 0 ? { previous: { stream: previous.stream, file: previous.file, bytes: previous.bytes } } : {}),
      };
      if (await this.settings.store.startStream(stream)) {
        this.state = writeSpoolState(this.settings.spool, { stream: id, serverId: facts.serverId, serverVersion: facts.version, file: first, bytes: 0 });
        this.streamsStarted.push({ stream: id, reason, detail });
        (reason === BinlogStreamReason.FIRST_START ? log.info : log.warn)('a new binlog stream begins', { stream: id, reason, detail, firstFile: first });
        return first;
      }
      log.warn('a binlog stream of this id exists already; taking the next second\'s', { stream: id });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Stores the spool every POLL_MS until stopped; a failure is tried again until the retry bound. */
  private async storeLoop(): Promise<void> {
    const backoff = new Backoff(this.settings.retryForMs);
    while (!this.sleeper.stopped) {
      try {
        await this.exclusive(() => this.storeSpool(false));
        backoff.ok();
        await this.sleeper.sleep(POLL_MS);
      } catch (err) {
        if (isFatal(err)) {
          this.giveUp(err instanceof AgentError ? err : new AgentError(`storing binlogs failed: ${(err as Error).message}`));
          return;
        }
        const wait = backoff.failed();
        if (wait === undefined) {
          this.giveUp(new AgentError(`storing binlogs has kept failing for ${backoff.failingSeconds()} s, so the streamer gives up (the spool keeps ` +
            `every file; a new task starts over): ${(err as Error).message}`));
          return;
        }
        log.warn('storing binlogs failed; trying again', { error: (err as Error).message, inSeconds: wait / 1000 });
        await this.sleeper.sleep(wait);
      }
    }
  }

  /** Walks the growing file on from where the last walk stopped (from its start when it is another file, or shorter). */
  private async walkGrowing(path: string, file: string): Promise<BinlogWalk> {
    const size = statSync(path).size;
    if (!this.growing || this.growing.file !== file || size < this.growing.read) this.growing = { file, walker: new BinlogWalker(file), read: 0 };
    const g = this.growing;
    if (size > g.read) {
      const handle = await open(path, 'r');
      try {
        const buffer = Buffer.alloc(Math.min(1024 * 1024, size - g.read));
        while (g.read < size) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - g.read), g.read);
          if (bytesRead === 0) break;
          g.walker.push(buffer.subarray(0, bytesRead));
          g.read += bytesRead;
        }
      } finally {
        await handle.close();
      }
    }
    return g.walker.result();
  }

  /** Stores the closed files, and the growing one when due (or `final`ly, whenever it grew). */
  private async storeSpool(final: boolean): Promise<void> {
    if (!this.state || this.divergence) return;
    const files = spoolFiles(this.settings.spool);
    for (let i = 0; i < files.length; i++) {
      const file = files[i];
      const path = join(liveDir(this.settings.spool), file);
      const closed = i < files.length - 1;
      if (this.pendingCheck?.file === file && !(await this.checkContinuity(path, file, closed))) return;
      if (closed) {
        const walk = this.growing?.file === file ? await this.walkGrowing(path, file) : await walkBinlogFile(path, file);
        if (walk.trailing !== 0 || !walk.format) {
          throw new BinlogFormatError(`${file} is closed (the server went on to ${files[i + 1]}) but ${walk.format ? `ends ${walk.trailing} bytes into an event` : 'holds no whole format description'}: ` +
            `it is not stored as good. Remove the spool's ${file} and the files after it to fetch them again, if the server still has them`);
        }
        await this.storeObject(path, file, walk, false);
        rmSync(path);
        this.partialStored.delete(file);
        if (this.growing?.file === file) this.growing = undefined;
        this.files++;
        continue;
      }
      if (!final && Date.now() < this.nextPartialAt) continue;
      if (!final) this.nextPartialAt = Date.now() + this.settings.partialIntervalMs;
      const walk = await this.walkGrowing(path, file);
      const stored = this.partialStored.get(file) ?? (this.state.file === file ? this.state.bytes : 0);
      if (!walk.format || walk.size <= Math.max(stored, walk.format.end)) continue;
      await this.storeObject(path, file, walk, true);
      this.partialStored.set(file, walk.size);
      this.partials++;
    }
  }

  private async storeObject(path: string, file: string, walk: BinlogWalk, partial: boolean): Promise<void> {
    const state = this.state!;
    await this.settings.store.storeFile(state.stream, path, file, walk, partial);
    this.state = writeSpoolState(this.settings.spool, {
      stream: state.stream, serverId: state.serverId, serverVersion: state.serverVersion, file, bytes: walk.size,
      created: walk.format!.created, afterFormatSha256: walk.afterFormatSha256,
    });
  }

  /**
   * Whether the file resumed on repeats what was stored of it: the same creation time, an event ending where the
   * stored bytes did, and the same bytes after the format description. Until it has that many bytes (and is still
   * growing), false without a verdict; when it does not, a new stream begins.
   */
  private async checkContinuity(path: string, file: string, closed: boolean): Promise<boolean> {
    const expected = this.pendingCheck!;
    const size = statSync(path).size;
    if (size < expected.bytes && !closed) return false;
    const walk = await walkBinlogFile(path, file, Math.min(size, expected.bytes));
    if (!walk.format && !closed) return false;
    if (walk.format && walk.format.created === expected.created && walk.size === expected.bytes && walk.afterFormatSha256 === expected.afterFormatSha256) {
      log.info('resumed: the re-fetched binlog repeats what was stored of it', { file, bytes: expected.bytes, stream: expected.stream });
      this.pendingCheck = undefined;
      return true;
    }
    const created = (t?: number) => (t === undefined ? 'unknown' : new Date(t * 1000).toISOString());
    this.divergence = walk.format && walk.format.created !== expected.created
      ? { reason: BinlogStreamReason.RESET, detail: `the server's ${file} was created at ${created(walk.format.created)}, the one streamed at ${created(expected.created)}: ` +
          'the server\'s binlogs were reset (RESET MASTER), so the same name now holds other events' }
      : { reason: BinlogStreamReason.SERVER_CHANGED, detail: `the server's ${file} does not repeat the ${expected.bytes} bytes of it stored in stream ${expected.stream} ` +
          `(${size < expected.bytes ? `it holds ${size}` : walk.size !== expected.bytes ? `its events end at ${walk.size}, not at ${expected.bytes}` : 'other bytes'}): ` +
          'the server is another one, or rewrote its binlog' };
    log.warn('the re-fetched binlog differs from what was stored; a new stream begins', { file, ...this.divergence });
    this.pendingCheck = undefined;
    this.stopChild();
    return false;
  }
}
