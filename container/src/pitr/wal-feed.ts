/**
 * WAL for a point-in-time restore, fetched by the agent and never by the server: the archived files from the base
 * backup's start onward are listed once (the plan), then fetched, verified (wal-fetch's checks) and put in a local
 * directory in replay order, a few at a time, while PostgreSQL replays. The server's restore_command is a shell
 * script that only copies from that directory: it holds no identity and no credentials.
 *
 * The script answers PostgreSQL as wal-fetch does: a file not in the plan exits 1 at once (PostgreSQL asks for files
 * that do not exist to learn where the archive ends); a planned file not fetched yet is waited for; once the feed
 * has failed, every request exits above 125, so that recovery stops instead of ending early and promoting.
 */
import { readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { STORED_SUFFIX, WalFileKind, walFileKind, walKey, walPrefix } from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { s3Problem } from '../shared/s3';
import { fetchWalFile } from '../commands/wal-fetch';
import { publishFile } from '../wal/files';

export interface PlannedWal {
  /** The name PostgreSQL asks for (a received partial is put in place under its segment's name). */
  readonly name: string;
  readonly key: string;
  /** A receiver's upload of an unfinished segment: padded with zeros to a whole segment once verified. */
  readonly receivedPartial: boolean;
  /** When S3 stored it. */
  readonly storedAt: Date;
}

/** Marker files in the WAL directory, read by the restore_command script. */
const EXPECTED = '.expected';
const DONE = '.done';
const FAILED = '.failed';
/** The name PostgreSQL asked for last: the feed stays a bounded number of files ahead of it. */
const ASKED = '.asked';
export const RESTORE_COMMAND_SCRIPT = 'restore-command.sh';
/** The restore_command's exit status once the feed failed: above 125, so that PostgreSQL stops recovery. */
export const FEED_FAILED_EXIT = 200;
const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
/** The most objects the plan lists: past it, the archive is not one a restore can replay in reasonable time. */
export const MAX_PLANNED_OBJECTS = 200_000;

/**
 * The WAL to replay from `startWalFile` on, in the order PostgreSQL asks for it: whole segments and timeline history
 * files up to and including the first segment S3 stored after `stopAfter` (all of them when undefined); then, when the
 * listing ran out before such a segment, the newest received partial of the first segment after the last whole one,
 * so that `--to latest` ends at what a receiver last uploaded. Listed page by page from the start segment, never the
 * whole archive.
 */
export async function planWal(s3: S3Client, bucket: string, prefix: string | undefined, source: string, startWalFile: string,
  stopAfter: Date | undefined): Promise<PlannedWal[]> {
  const base = walPrefix(prefix, source);
  const planned: PlannedWal[] = [];
  const partials: PlannedWal[] = [];
  let token: string | undefined;
  let covered = false;
  let listed = 0;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({
        Bucket: bucket, Prefix: base, ContinuationToken: token, StartAfter: token ? undefined : walKey(prefix, source, startWalFile),
      }));
    } catch (err) {
      throw s3Problem('ListObjectsV2', bucket, base, err);
    }
    for (const object of page.Contents ?? []) {
      if (++listed > MAX_PLANNED_OBJECTS) {
        throw new AgentError(`s3://${bucket}/${base} holds more than ${MAX_PLANNED_OBJECTS} objects from ${startWalFile} on` +
          `${stopAfter ? ` before WAL stored after ${stopAfter.toISOString()}` : ''}: more than a restore lists. Take a newer base backup, ` +
          'or restore to an earlier time');
      }
      const key = object.Key ?? '';
      if (!key.endsWith(STORED_SUFFIX)) continue;
      const name = key.slice(base.length, -STORED_SUFFIX.length);
      const storedAt = object.LastModified ?? new Date(0);
      const kind = walFileKind(name);
      if (kind === WalFileKind.SEGMENT || kind === WalFileKind.HISTORY) planned.push({ name, key, receivedPartial: false, storedAt });
      if (kind === WalFileKind.RECEIVED_PARTIAL) partials.push({ name: name.slice(0, 24), key, receivedPartial: true, storedAt });
      if (kind === WalFileKind.SEGMENT && stopAfter && storedAt.getTime() > stopAfter.getTime()) {
        covered = true;
        break;
      }
    }
    token = !covered && page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (!covered) {
    const lastWhole = planned.filter((p) => walFileKind(p.name) === WalFileKind.SEGMENT).map((p) => p.name).pop() ?? startWalFile;
    // Keys sort by segment, then by the bytes written: the newest upload of the first segment past the last whole one.
    const next = partials.filter((p) => p.name > lastWhole);
    const segment = next[0]?.name;
    const newest = next.filter((p) => p.name === segment).pop();
    if (newest) planned.push(newest);
  }
  log.info('wal planned', {
    files: planned.length, first: planned[0]?.name, last: planned[planned.length - 1]?.name,
    receivedPartial: planned.some((p) => p.receivedPartial), coveredTarget: covered,
  });
  return planned;
}

/** The shell script restore_command runs: it copies from `dir` and nothing else. */
export function restoreCommandScript(dir: string): string {
  return `#!/bin/sh
# Written by restorable restore: hands PostgreSQL the WAL files the agent fetched and verified into this directory.
# It reads no archive and holds no key. 1: not in the archive (PostgreSQL asks for such files); ${FEED_FAILED_EXIT}: the fetch failed.
dir='${dir}'
grep -qxF -- "$1" "$dir/${EXPECTED}" || exit 1
printf '%s\n' "$1" > "$dir/${ASKED}"
while :; do
  if [ -f "$dir/$1" ]; then cp -- "$dir/$1" "$2" || exit ${FEED_FAILED_EXIT}; exit 0; fi
  [ -f "$dir/${FAILED}" ] && exit ${FEED_FAILED_EXIT}
  [ -f "$dir/${DONE}" ] && exit 1
  sleep 0.1
done
`;
}

/** What restore_command must be, for the server, to run the script in `dir`. */
export function restoreCommandFor(dir: string): string {
  return `/bin/sh "${join(dir, RESTORE_COMMAND_SCRIPT)}" "%f" "%p"`;
}

/** The WAL segment size of a restored data directory: that of a segment the base backup brought, else the default. */
export function segmentBytes(dataDir: string, segment: string): number {
  try {
    return statSync(join(dataDir, 'pg_wal', segment)).size || DEFAULT_SEGMENT_BYTES;
  } catch {
    return DEFAULT_SEGMENT_BYTES;
  }
}

export interface FeedResult {
  readonly fetched: number;
  readonly bytes: number;
}

/**
 * Fetches the planned WAL into `dir`, in order, `concurrency` at a time, and at most `lookahead` files past the one the
 * server asked for last (so that the directory holds a bounded window, not the whole archive); writes the markers the
 * script reads.
 */
export class WalFeed {
  readonly done: Promise<FeedResult>;
  private stopped = false;
  private next = 0;
  private fetched = 0;
  private bytes = 0;
  private asked = -1;
  private readonly index: ReadonlyMap<string, number>;

  constructor(private readonly s3: S3Client, private readonly bucket: string, private readonly plan: readonly PlannedWal[],
    private readonly dir: string, private readonly identityFile: string, private readonly segmentSize: number, concurrency = 4,
    private readonly lookahead = Infinity) {
    this.index = new Map(plan.map((p, i) => [p.name, i]));
    writeFileSync(join(dir, EXPECTED), plan.map((p) => `${p.name}\n`).join(''));
    writeFileSync(join(dir, RESTORE_COMMAND_SCRIPT), restoreCommandScript(dir), { mode: 0o755 });
    this.done = Promise.all(Array.from({ length: concurrency }, () => this.work())).then(() => {
      writeFileSync(join(dir, DONE), `${new Date().toISOString()}\n`);
      log.info('wal fetched', { files: this.fetched, bytes: this.bytes, stopped: this.stopped });
      return { fetched: this.fetched, bytes: this.bytes };
    }, (err: Error) => {
      this.stopped = true;
      writeFileSync(join(dir, FAILED), `${err.message}\n`);
      throw err;
    });
    this.done.catch(() => undefined);
  }

  /** Takes no more files (those in flight finish); the script then says "not in the archive" for the rest. */
  stop(): void {
    this.stopped = true;
  }

  /** Removes the fetched WAL files (the server has copied what it replayed); the markers and script stay. */
  removeFetched(): void {
    for (const p of this.plan) rmSync(join(this.dir, p.name), { force: true });
  }

  /** Waits until the server has asked for a file no more than `lookahead` before file `i`. */
  private async within(i: number): Promise<void> {
    while (!this.stopped && i > this.asked + this.lookahead) {
      try {
        this.asked = Math.max(this.asked, this.index.get(readFileSync(join(this.dir, ASKED), 'utf8').trim()) ?? -1);
      } catch {
        // not asked yet
      }
      if (i > this.asked + this.lookahead) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async work(): Promise<void> {
    while (!this.stopped && this.next < this.plan.length) {
      const i = this.next++;
      await this.within(i);
      if (this.stopped) break;
      const planned = this.plan[i];
      const dest = join(this.dir, planned.name);
      const identity = async () => ({ file: this.identityFile, release: () => undefined });
      if (!planned.receivedPartial) {
        this.bytes += (await fetchWalFile(this.s3, this.bucket, planned.key, planned.name, dest, identity)).size;
      } else {
        // Verified as uploaded (only the bytes written), then padded with zeros to the segment size PostgreSQL reads.
        const tmp = join(this.dir, `.received-${planned.name}`);
        // Never decompressed past a segment: a received partial holds at most one.
        const fetched = await fetchWalFile(this.s3, this.bucket, planned.key, planned.name, tmp, identity, this.segmentSize);
        if (fetched.size > this.segmentSize) {
          throw new AgentError(`s3://${this.bucket}/${planned.key} holds ${fetched.size} bytes, more than a ${this.segmentSize}-byte WAL segment`);
        }
        truncateSync(tmp, this.segmentSize);
        publishFile(tmp, dest);
        this.bytes += fetched.size;
        log.info('received partial put in place', { segment: planned.name, key: planned.key, bytes: fetched.size });
      }
      this.fetched++;
    }
  }
}
