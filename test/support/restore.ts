/**
 * Restores with standard tools only (age, zstd, pg_restore, mysql), as a person holding the
 * identity file would: the proof that the stored format needs nothing of ours.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MYSQL } from './mysql';
import { PG } from './postgres';
import { S3Emulator } from './s3rver';
import { sh } from './shell';

/** Downloads an object into a temporary file and returns its path. */
export async function download(s3: S3Emulator, key: string): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'restorable-dl-')), key.split('/').pop()!);
  writeFileSync(file, await s3.getBytes(key));
  return file;
}

export function decryptToText(file: string, identityFile: string): string {
  return sh(`age -d -i '${identityFile}' '${file}' | zstd -d`);
}

export function restorePg(file: string, identityFile: string, database: string): void {
  sh(`age -d -i '${identityFile}' '${file}' | zstd -d | pg_restore --exit-on-error --dbname='${database}'`,
    { ...process.env, PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGPASSWORD: PG.password });
}

export function restoreMysql(file: string, identityFile: string, database: string): void {
  sh(`age -d -i '${identityFile}' '${file}' | zstd -d | mysql -h ${MYSQL.host} -P ${MYSQL.port} -u ${MYSQL.user} '${database}'`,
    { ...process.env, MYSQL_PWD: MYSQL.password });
}
