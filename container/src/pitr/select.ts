/**
 * Which base backup a point-in-time restore starts from: the newest one, by its recorded manifest, that finished
 * before the target time (or the newest of all, for the latest point). Its bytes are checked against the manifest's
 * size and SHA-256 as they are unpacked (unpackBaseBackup).
 */
import { chmodSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import {
  BASE_BACKUP_SUFFIX, BaseBackupManifest, ContractError, MANIFEST_SUFFIX, baseBackupPrefix, parseBackupKey, parseBaseBackupManifest,
} from '../../../lib/contract';
import { AgentError } from '../shared/errors';
import { log } from '../shared/log';
import { ProcessPipeline } from '../shared/pipeline';
import { getText, listAll } from '../shared/s3';
import { decompressStage, decryptStage, explainDecryptFailure } from '../restore/decrypt';
import { VerifyingTap, downloadInto } from '../restore/download';
import { TarScanner } from './tar';

export interface BaseBackupChoice {
  readonly key: string;
  readonly manifest: BaseBackupManifest;
}

/**
 * The newest base backup with a readable manifest that finished before `before` (every one, when undefined). Base
 * backups whose key starts at or after `before` are passed over without reading their manifest.
 */
export async function selectBaseBackup(s3: S3Client, bucket: string, prefix: string | undefined, source: string,
  before: Date | undefined): Promise<BaseBackupChoice> {
  const base = baseBackupPrefix(prefix, source);
  const keys = new Set((await listAll(s3, bucket, base)).map((o) => o.Key ?? ''));
  const candidates = [...keys]
    .filter((k) => k.endsWith(BASE_BACKUP_SUFFIX) && keys.has(`${k}${MANIFEST_SUFFIX}`) && parseBackupKey(k)?.source === source)
    .map((key) => ({ key, startedAt: parseBackupKey(key)!.startedAt.getTime() }))
    .filter((c) => before === undefined || c.startedAt < before.getTime())
    .sort((a, b) => b.startedAt - a.startedAt);
  for (const { key } of candidates) {
    const manifestKey = `${key}${MANIFEST_SUFFIX}`;
    const where = `s3://${bucket}/${manifestKey}`;
    const text = await getText(s3, bucket, manifestKey);
    if (!text) continue;
    let manifest: BaseBackupManifest;
    try {
      manifest = parseBaseBackupManifest(text.text, where);
    } catch (err) {
      if (!(err instanceof ContractError)) throw err;
      log.warn('skipping a base backup whose manifest cannot be read', { key, problem: err.message });
      continue;
    }
    if (manifest.key !== key || manifest.source !== source) {
      log.warn('skipping a base backup whose manifest describes another object', { key, describes: manifest.key });
      continue;
    }
    if (before && Date.parse(manifest.finishedAt) >= before.getTime()) continue;
    log.info('base backup selected', { key, startedAt: manifest.startedAt, finishedAt: manifest.finishedAt, startWalFile: manifest.startWalFile });
    return { key, manifest };
  }
  throw new AgentError(`no recorded base backup of '${source}' ${before ? `finished before ${before.toISOString()} ` : ''}in s3://${bucket}/${base}: ` +
    'a point-in-time restore starts from one. Take one with `restorable basebackup`' + (before ? ', or give a later --to' : ''));
}

/** Downloads a base backup into `dataDir` (which must exist and be empty): verify → age -d → zstd -d → tar -x. */
export async function unpackBaseBackup(s3: S3Client, bucket: string, choice: BaseBackupChoice, identityFile: string, dataDir: string): Promise<void> {
  const where = `s3://${bucket}/${choice.key}`;
  const tap = new VerifyingTap(where, { size: choice.manifest.size, sha256: choice.manifest.sha256 }, () => pipeline.kill());
  // Its bytes are read before tar gets them: an entry a data directory never holds stops tar before it is written.
  const entries = new TarScanner();
  // The manifest says how long the tar is: a stream that goes on past it (a small object that decompresses without
  // end) is stopped there.
  let tooLong = false;
  const inspect = (chunk: Buffer) => {
    entries.feed(chunk);
    if (entries.bytes > choice.manifest.tarSize) tooLong = true;
    if (entries.unsafe || entries.problem || tooLong) pipeline.kill();
  };
  const refused = () => {
    if (entries.unsafe) {
      return new AgentError(`${where} holds ${entries.unsafe}, which is no part of a data directory: refusing to unpack it. ${dataDir} holds ` +
        'what came before it and must be emptied; restore from another base backup');
    }
    if (entries.problem) {
      return new AgentError(`${where} holds what this restore does not read as plain ustar (${entries.problem}): refusing to unpack it. ` +
        `${dataDir} holds what came before it and must be emptied; restore from another base backup`);
    }
    if (tooLong) {
      return new AgentError(`${where} unpacks to more than the ${choice.manifest.tarSize} bytes of tar its manifest records: refusing the rest. ` +
        `${dataDir} holds what came before it and must be emptied; restore from another base backup`);
    }
    return undefined;
  };
  const pipeline = new ProcessPipeline([
    decryptStage(identityFile), { ...decompressStage(), inspect },
    // The files belong to whoever restores (the server's user), not to the ids the source's server had.
    { name: 'tar', command: 'tar', args: ['-x', '-f', '-', '-C', dataDir, '--no-same-owner'] },
  ], { input: tap });
  await downloadInto(s3, bucket, choice.key, undefined, tap);
  try {
    await pipeline.done;
  } catch (err) {
    const refusal = refused();
    if (refusal) throw refusal;
    if (tap.problem) throw new AgentError(`${tap.problem}: ${dataDir} holds part of it and must be emptied before another try`);
    if (tap.downloadError) throw new AgentError(`downloading ${where} failed: ${tap.downloadError.message}; ${dataDir} must be emptied before another try`);
    throw explainDecryptFailure(err, where, undefined);
  }
  if (tap.problem) throw new AgentError(`${tap.problem}: ${dataDir} holds it, unverified, and must be emptied before another try`);
  const refusal = refused();
  if (refusal) throw refusal;
  const odd = notPlain(dataDir);
  if (odd) throw new AgentError(`${where} unpacked ${odd}, which is no part of a data directory: refusing to restore it; ${dataDir} must be emptied`);
  // PostgreSQL starts only from a data directory its owner alone may enter; a tar's own entry for it may say otherwise.
  chmodSync(dataDir, 0o700);
  log.info('base backup unpacked', { key: choice.key, dataDir, size: choice.manifest.size, tarSize: choice.manifest.tarSize });
}

/** The first thing under `dir` that is neither a regular file nor a directory (read without following links), if any. */
export function notPlain(dir: string): string | undefined {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isDirectory()) {
      const inner = notPlain(path);
      if (inner) return inner;
    } else if (!stat.isFile()) {
      return `${path} (${stat.isSymbolicLink() ? 'a symbolic link' : 'neither a file nor a directory'})`;
    }
  }
  return undefined;
}
