/**
 * The pull side of WAL archiving: pg_receivewal streams the server's WAL over a replication slot into a spool
 * directory, and the receiver stores what it writes there.
 *
 * - pg_receivewal runs with --synchronous (it flushes, and tells the server, as soon as WAL arrives) and --no-loop:
 *   when it stops (the connection dropped, the server restarted) the receiver starts it again, waiting 1 s, 2 s, 4 s …
 *   up to 30 s between tries, and gives up (the command fails, and ECS starts a new task) once it has been failing
 *   for longer than `retryForMs`. Storing WAL has the same bound.
 * - The slot's position moves with pg_receivewal's flush into the spool, not with the store: the spool must outlive
 *   the task (EFS in AWS), and every start first stores what an earlier run left in it. A finished segment is
 *   removed from the spool only once stored and verified (or found stored with the same SHA-256); history files
 *   stay (they are small, and pg_receivewal would fetch them again).
 * - The growing `.partial` is stored every `partialIntervalMs` when it grew, as a new write-once key
 *   `{segment}.partial.{bytes}` (receivedPartialName), and once more when the receiver stops, after pg_receivewal
 *   has exited (and flushed). Its stored content is its first `bytes` bytes: a restore pads it with zeros to the
 *   segment size, which gives the file as it was.
 */
import { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { WalFileKind, receivedPartialName, walFileKind } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { ChildExit, HEALTHY_RUN_MS, Sleeper, describeExit, runLoggedChild } from '../shared/supervise';
import { ArchivedWal, WalConflict, WalReadError } from './archive';
import { readSpool, segmentOfPartial, writtenLength } from './spool';

export interface ReceiverSettings {
  readonly spool: string;
  readonly slot: string;
  readonly partialIntervalMs: number;
  /** How long pg_receivewal, or storing WAL, may keep failing before the receiver gives up. */
  readonly retryForMs: number;
  /** pg_receivewal's environment: libpq's connection variables (the password among them, never in argv). */
  readonly env: NodeJS.ProcessEnv;
  /** Stores one file of the spool under `name` (only its first `length` bytes, for a received partial). */
  readonly store: (path: string, name: string, length?: number) => Promise<ArchivedWal>;
}

export interface ReceiveSummary {
  readonly slot: string;
  readonly spool: string;
  /** Segments stored (or found stored) and removed from the spool, and history files stored. */
  readonly segments: number;
  readonly historyFiles: number;
  /** Received partials stored. */
  readonly partials: number;
  /** The newest received partial stored, as its WAL file name. */
  readonly lastPartial?: string;
  /** Times pg_receivewal was started again after it stopped. */
  readonly restarts: number;
  readonly stoppedBy?: string;
}

const MAX_BACKOFF_MS = 30_000;
/** How often the spool is looked at for finished files. */
const POLL_MS = 250;
/** How long pg_receivewal may take to flush and exit after SIGINT before it is killed. */
const EXIT_GRACE_MS = 15_000;

export class WalReceiver {
  private readonly sleeper = new Sleeper();
  private stoppedBy?: string;
  private fatal?: AgentError;
  private child?: ChildProcess;
  /** `.partial` name → the bytes of it last stored. */
  private readonly partialsStored = new Map<string, number>();
  /** History files stored by this run (they stay in the spool). */
  private readonly historyStored = new Set<string>();
  private nextPartialAt = 0;
  private segments = 0;
  private historyFiles = 0;
  private partials = 0;
  private lastPartial?: string;
  private restarts = 0;

  constructor(private readonly settings: ReceiverSettings) {}

  /** Receives until stop() or a failure past the retry bound; then stores what is left in the spool. */
  async run(): Promise<ReceiveSummary> {
    await Promise.all([this.supervise(), this.storeLoop()]);
    // pg_receivewal has exited: what it flushed last is in the spool, and nothing writes there any more.
    try {
      await this.storeSpool(true);
    } catch (err) {
      this.fatal ??= err instanceof AgentError ? err : new AgentError(`storing the spool's last files failed: ${(err as Error).message}`);
    }
    if (this.fatal) throw this.fatal;
    const s = this.settings;
    return {
      slot: s.slot, spool: s.spool, segments: this.segments, historyFiles: this.historyFiles, partials: this.partials,
      lastPartial: this.lastPartial, restarts: this.restarts, stoppedBy: this.stoppedBy,
    };
  }

  /** Stops receiving: pg_receivewal is asked to flush and exit, then the spool is stored a last time. */
  stop(reason: string): void {
    if (this.stopping) return;
    log.info('stopping: pg_receivewal flushes and exits, then the spool is stored', { reason });
    this.stoppedBy = reason;
    this.halt();
  }

  private get stopping(): boolean {
    return this.sleeper.stopped;
  }

  private halt(): void {
    this.sleeper.stop();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS).unref();
    }
  }

  private giveUp(err: AgentError): void {
    this.fatal ??= err;
    this.halt();
  }

  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private connectionArgs(): string[] {
    return ['--slot', this.settings.slot, '--no-password'];
  }

  private runReceivewal(args: readonly string[]): Promise<ChildExit> {
    return runLoggedChild('pg_receivewal', args, this.settings.env, (child) => { this.child = child; });
  }

  /** Creates the slot if it is missing, then keeps pg_receivewal running until stopped or out of retries. */
  private async supervise(): Promise<void> {
    const { spool, retryForMs } = this.settings;
    let slotReady = false;
    let failingSince: number | undefined;
    let backoff = 1000;
    while (!this.stopping) {
      const started = Date.now();
      const exit = slotReady
        ? await this.runReceivewal(['--directory', spool, ...this.connectionArgs(), '--synchronous', '--no-loop'])
        : await this.runReceivewal([...this.connectionArgs(), '--create-slot', '--if-not-exists']);
      if (this.stopping) return;
      if (!slotReady && exit.code === 0) {
        log.info('replication slot ready', { slot: this.settings.slot });
        slotReady = true;
        continue;
      }
      if (Date.now() - started >= HEALTHY_RUN_MS) {
        failingSince = Date.now();
        backoff = 1000;
      } else {
        failingSince ??= started;
      }
      const what = slotReady ? 'pg_receivewal' : `pg_receivewal --create-slot (slot ${this.settings.slot})`;
      if (Date.now() - failingSince > retryForMs) {
        this.giveUp(new AgentError(`${what} has kept failing for ${Math.round((Date.now() - failingSince) / 1000)} s, so the receiver gives up ` +
          `(a new task starts over): it last ${describeExit(exit)}. Check that the server is reachable, that the user has the REPLICATION ` +
          'attribute and a "replication" line in pg_hba.conf, and that no other receiver uses the slot'));
        return;
      }
      this.restarts += slotReady ? 1 : 0;
      log.warn(`${what} stopped; starting it again`, { detail: describeExit(exit), inSeconds: backoff / 1000 });
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  /** Stores the spool every POLL_MS until stopped; a failure is tried again until the retry bound. */
  private async storeLoop(): Promise<void> {
    let failingSince: number | undefined;
    let backoff = 1000;
    while (!this.stopping) {
      try {
        await this.storeSpool(false);
        failingSince = undefined;
        backoff = 1000;
        await this.sleep(POLL_MS);
      } catch (err) {
        if (!(err instanceof AgentError) || err instanceof WalConflict) {
          this.giveUp(err instanceof AgentError ? err : new AgentError(`storing WAL failed: ${(err as Error).message}`));
          return;
        }
        failingSince ??= Date.now();
        if (Date.now() - failingSince > this.settings.retryForMs) {
          this.giveUp(new AgentError(`storing WAL has kept failing for ${Math.round((Date.now() - failingSince) / 1000)} s, so the receiver gives ` +
            `up (the spool keeps every file; a new task starts over): ${err.message}`));
          return;
        }
        log.warn('storing WAL failed; trying again', { error: err.message, inSeconds: backoff / 1000 });
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** Stores and removes the finished files, and the partials when due (or `final`ly, whatever changed). */
  private async storeSpool(final: boolean): Promise<void> {
    const { spool, store } = this.settings;
    for (const name of readSpool(spool).finished) {
      if (this.historyStored.has(name)) continue;
      await store(join(spool, name), name);
      if (walFileKind(name) === WalFileKind.HISTORY) {
        // Kept: pg_receivewal fetches a timeline's history file again at every start when it is not in its directory.
        this.historyStored.add(name);
        this.historyFiles++;
      } else {
        rmSync(join(spool, name));
        this.partialsStored.delete(`${name}.partial`);
        this.segments++;
      }
      // A backlog of finished segments must not hold back the newest WAL.
      if (!final) await this.storePartialsIfDue();
    }
    if (final) await this.storePartials();
    else await this.storePartialsIfDue();
  }

  private async storePartialsIfDue(): Promise<void> {
    if (Date.now() < this.nextPartialAt) return;
    this.nextPartialAt = Date.now() + this.settings.partialIntervalMs;
    await this.storePartials();
  }

  private async storePartials(): Promise<void> {
    const { spool, store } = this.settings;
    for (const partial of readSpool(spool).partials) {
      const path = join(spool, partial);
      let bytes: number;
      try {
        bytes = await writtenLength(path);
      } catch (err) {
        // Finished and renamed in between: stored whole on the next pass.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (bytes === 0 || this.partialsStored.get(partial) === bytes) continue;
      const name = receivedPartialName(segmentOfPartial(partial), bytes);
      try {
        await store(path, name, bytes);
        this.partials++;
        this.lastPartial = name;
      } catch (err) {
        if (err instanceof WalReadError && err.cause.code === 'ENOENT') continue;
        // The same length read twice with different bytes (a page read while pg_receivewal wrote it): the next,
        // longer one supersedes it. A conflict of whole segments is another matter, and stops the receiver.
        if (!(err instanceof WalConflict)) throw err;
        log.warn('a received partial of this length is already stored with other bytes; the next one supersedes it', { file: name });
      }
      this.partialsStored.set(partial, bytes);
    }
  }
}
