/**
 * Planted backups, PostgreSQL 15: whoever holds a dump task's credentials can write a backup of a database of their
 * own, with a matching manifest and latest.json, and a roles companion of their choosing. Here that backup holds a
 * table whose CHECK constraint, generated column and index expression call functions that try COPY … TO PROGRAM,
 * lo_export and pg_read_file (each inside an exception block, so that nothing fails), an event trigger that tries
 * COPY … TO PROGRAM, a privilege on pg_read_file for everyone and an extension outside the allow-list (dblink); its
 * roles companion makes a superuser, grants pg_execute_server_program and pg_write_server_files, sets
 * session_preload_libraries, carries a password hash and a COPY … TO PROGRAM of its own. (No untrusted language is
 * installed on this server, so none is planted: the table-of-contents filter's unit tests cover languages.)
 *
 * The same archive loaded by a superuser with plain pg_restore does run the payloads (the control). `restorable
 * restore-test` and `restorable restore`, with the bundled agent and the real server, run none: no marker file
 * appears, no file is read, nothing is granted, and the report names every entry and statement that was refused.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Manifest } from '../../lib/contract';
import {
  AgeKey, MotoBucket, PG, agentEnv, logLines, createPgDatabase, dropPgDatabase, makeAgeKey, motoBucket, pgQuery, runAgent, uniqueName,
} from '../support';

const source = 'planted-pg';
const attacker = uniqueName('planted_src');
const scratch = uniqueName('planted_scratch');
const target = uniqueName('planted_target');
const control = uniqueName('planted_control');
/** The role an operator names to own what `restore` creates. */
const restorer = uniqueName('planted_restorer');
/** Roles the planted companion creates. */
const evil = uniqueName('planted_evil');
const plain = uniqueName('planted_plain');
/** A role the target server already has, with a predefined role of its own: the companion tries to pass it on. */
const reader = uniqueName('planted_reader');
const HASH = 'SCRAM-SHA-256$4096:cGxhbnRlZA==$planted-stored-key:planted-server-key';
const SECRET = `planted secret ${process.pid}`;

let s3: MotoBucket;
let key: AgeKey;
let dir: string;
let manifestKey: string;

const env = () => agentEnv({ ...s3.env, PGPASSWORD: PG.password });
const connection = ['--host', PG.host, '--port', String(PG.port), '--user', PG.user];
const markers = () => readdirSync(dir).filter((f) => f.endsWith('MARKER')).sort();
const lit = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * A payload that tries each way out, each in its own exception block; what it manages is written to public.loot and
 * to marker files named after the caller. Volatile: the immutable functions of the generated column and the index
 * call it (an immutable function may not run COPY itself, but a volatile one it calls may).
 */
const payloadFunction = () => `
  CREATE FUNCTION public.payload(tag text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
  DECLARE lo oid;
  BEGIN
    BEGIN EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'touch ${dir}/' || tag || '_COPY_MARKER'); EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN lo := lo_from_bytea(0, 'planted'); PERFORM lo_export(lo, '${dir}/' || tag || '_LO_MARKER'); EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN INSERT INTO public.loot VALUES (tag, pg_read_file(${lit(join(dir, 'secret.txt'))})); EXCEPTION WHEN OTHERS THEN NULL; END;
    RETURN true;
  END $f$;`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'restorable-planted-'));
  chmodSync(dir, 0o777); // the server's own user would write the markers
  writeFileSync(join(dir, 'secret.txt'), SECRET, { mode: 0o644 });
  s3 = await motoBucket();
  key = makeAgeKey();
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${restorer}; CREATE ROLE ${restorer} NOLOGIN;
    DROP ROLE IF EXISTS ${reader}; CREATE ROLE ${reader} NOLOGIN; GRANT pg_read_all_data TO ${reader}`);
  await createPgDatabase(attacker);
  await pgQuery(attacker, `
    CREATE EXTENSION dblink;
    CREATE SCHEMA crypto;
    CREATE EXTENSION pgcrypto WITH SCHEMA crypto;
    CREATE EXTENSION citext;
    CREATE TABLE public.notes (name citext PRIMARY KEY, digest bytea NOT NULL DEFAULT crypto.digest('planted', 'sha256'));
    INSERT INTO public.notes (name) VALUES ('One'), ('two');
    CREATE TABLE public.loot (tag text, content text);
    ${payloadFunction()}
    CREATE FUNCTION public.check_payload(v int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$ BEGIN RETURN public.payload('CHECK'); END $f$;
    CREATE FUNCTION public.generated_payload(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN PERFORM public.payload('GENERATED'); RETURN v; END $f$;
    CREATE FUNCTION public.index_payload(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN PERFORM public.payload('INDEX'); RETURN v; END $f$;
    CREATE TABLE public.planted (id int PRIMARY KEY CHECK (public.check_payload(id)), twin int GENERATED ALWAYS AS (public.generated_payload(id)) STORED);
    CREATE INDEX planted_index ON public.planted (public.index_payload(id));
    INSERT INTO public.planted (id) SELECT g FROM generate_series(1, 3) g;
    CREATE FUNCTION public.event_payload() RETURNS event_trigger LANGUAGE plpgsql AS $f$ BEGIN PERFORM public.payload('EVENT'); END $f$;
    CREATE EVENT TRIGGER planted_event ON ddl_command_end EXECUTE FUNCTION public.event_payload();
    GRANT EXECUTE ON FUNCTION pg_read_file(text) TO PUBLIC;
    DELETE FROM public.loot;`);
  // Setting up the attacker's own database ran the payloads as a superuser: start from nothing.
  for (const f of markers()) rmSync(join(dir, f));

  // The attacker's dump role writes a real backup of that database (manifest, latest.json and all)...
  const run = await runAgent(['backup', '--source', source, '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
    ...connection, '--database', attacker, '--json'], env());
  if (run.code !== 0) throw new Error(`the planted backup failed: ${run.stderr}`);
  manifestKey = (JSON.parse(run.stdout) as { manifestKey: string }).manifestKey;
  await pgQuery(attacker, 'DROP EVENT TRIGGER planted_event');
  await dropPgDatabase(attacker);

  // ...then replaces its roles companion with one of their own, encrypted to the same recipient, and the manifest to match.
  const companionSql = [
    '\\restrict planted',
    'SET default_transaction_read_only = off;',
    `CREATE ROLE ${evil};`,
    `ALTER ROLE ${evil} WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD '${HASH}';`,
    `ALTER ROLE ${evil} SET session_preload_libraries = 'auto_explain';`,
    `GRANT pg_execute_server_program TO ${evil} GRANTED BY postgres;`,
    `GRANT pg_write_server_files TO ${evil};`,
    `GRANT postgres TO ${evil};`,
    `GRANT ${reader} TO ${evil};`,
    "ALTER SYSTEM SET shared_preload_libraries = 'planted';",
    `COPY (SELECT 1) TO PROGRAM 'touch ${join(dir, 'ROLES_COPY_MARKER')}';`,
    `CREATE ROLE ${plain}; ALTER ROLE ${plain} WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;`,
    `GRANT ${plain} TO ${evil};`,
    '\\! touch ' + join(dir, 'META_MARKER'),
  ].join('\n');
  const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
  const companion = manifest.companions.find((c) => c.kind === 'globals')!;
  const sealed = spawnSync('bash', ['-o', 'pipefail', '-c', `zstd -q -c | age -r ${key.recipient}`], { input: companionSql, maxBuffer: 64 << 20 });
  if (sealed.status !== 0) throw new Error(sealed.stderr.toString());
  const bytes = sealed.stdout;
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: companion.key, Body: bytes }));
  const forged: Manifest = { ...manifest, companions: [{ ...companion, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }] };
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: manifestKey, Body: JSON.stringify(forged, null, 2) }));
}, 120_000);

afterAll(async () => {
  for (const db of [attacker, scratch, target, control]) await dropPgDatabase(db).catch(() => undefined);
  await pgQuery('postgres', `DROP ROLE IF EXISTS ${evil}; DROP ROLE IF EXISTS ${plain}; DROP ROLE IF EXISTS ${restorer}; DROP ROLE IF EXISTS ${reader}`).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** What the planted roles came to on the server: never a superuser, never a member of a server role. */
async function evilRole(): Promise<unknown[]> {
  return pgQuery('postgres', `SELECT rolname, rolsuper, rolcanlogin, rolreplication, rolbypassrls, rolcreaterole, rolpassword IS NOT NULL AS password,
      pg_has_role(oid, 'pg_execute_server_program', 'MEMBER') AS program, pg_has_role(oid, 'pg_write_server_files', 'MEMBER') AS write,
      (SELECT count(*) FROM pg_db_role_setting WHERE setrole = r.oid)::int AS settings
    FROM pg_authid r WHERE rolname = $1`, [evil]);
}

const SAFE_EVIL = { rolname: evil, rolsuper: false, rolcanlogin: false, rolreplication: false, rolbypassrls: false, rolcreaterole: false,
  password: false, program: false, write: false, settings: 0 };

/** Every refusal the planted backup must produce, by what it names. */
const DUMP_REFUSALS = [
  { what: 'EXTENSION dblink', why: expect.stringContaining('is not one of the extensions a restore installs') },
  { what: 'ACL pg_catalog.FUNCTION pg_read_file(text)', why: expect.stringContaining('changes a system object') },
  { what: 'EVENT TRIGGER planted_event', why: expect.stringContaining('event triggers need a superuser') },
];
const ROLE_REFUSALS = [
  { what: expect.stringMatching(new RegExp(`^ALTER ROLE ${evil} WITH SUPERUSER`)), why: expect.stringContaining('SUPERUSER') },
  { what: `ALTER ROLE ${evil} SET session_preload_libraries = '…'`, why: expect.stringContaining('session_preload_libraries') },
  { what: `GRANT pg_execute_server_program TO ${evil} GRANTED BY postgres`, why: expect.stringContaining('predefined role') },
  { what: `GRANT pg_write_server_files TO ${evil}`, why: expect.stringContaining('predefined role') },
  // Roles the server already had are never handed out, whatever rights they carry (a superuser, pg_read_all_data).
  { what: `GRANT postgres TO ${evil}`, why: 'postgres existed before the restore: a backup never hands out a role the server already had' },
  { what: `GRANT ${reader} TO ${evil}`, why: `${reader} existed before the restore: a backup never hands out a role the server already had` },
  { what: "ALTER SYSTEM SET shared_preload_libraries = '…'", why: expect.stringContaining('none of the statements') },
  { what: "COPY ( SELECT 1 ) TO PROGRAM '…'", why: expect.stringContaining('none of the statements') },
  { what: expect.stringMatching(/^\\! touch /), why: expect.stringContaining('psql meta-command') },
];

test('control: loaded by a superuser with plain pg_restore, the same archive runs its payloads', async () => {
  const manifest = JSON.parse((await s3.getText(manifestKey))!) as Manifest;
  await createPgDatabase(control);
  const bytes = await s3.getBytes(manifest.key);
  const file = join(dir, 'planted.age');
  writeFileSync(file, bytes);
  const load = spawnSync('bash', ['-o', 'pipefail', '-c', `age -d -i '${key.identityFile}' '${file}' | zstd -d -c | pg_restore --no-owner -d ${control}`],
    { env: { ...process.env, PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGPASSWORD: PG.password }, encoding: 'utf8' });
  expect(load.status).toBe(0);
  try {
    expect(markers()).toEqual(expect.arrayContaining(['CHECK_COPY_MARKER', 'CHECK_LO_MARKER', 'GENERATED_COPY_MARKER', 'GENERATED_LO_MARKER',
      'INDEX_COPY_MARKER', 'INDEX_LO_MARKER']));
    expect(await pgQuery(control, "SELECT DISTINCT tag, content FROM public.loot WHERE tag IN ('CHECK', 'GENERATED') ORDER BY 1"))
      .toEqual([{ tag: 'CHECK', content: SECRET }, { tag: 'GENERATED', content: SECRET }]);
  } finally {
    await pgQuery(control, 'DROP EVENT TRIGGER IF EXISTS planted_event');
    await dropPgDatabase(control);
    for (const f of markers()) rmSync(join(dir, f));
  }
});

test('restore-test: nothing runs, nothing is read, and the report names what was refused; the test fails on what it did not expect', async () => {
  await createPgDatabase(scratch);
  const run = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection,
    '--database', scratch, '--json'], env());
  expect(run.stdout).not.toBe('');
  const report = JSON.parse(run.stdout);
  expect(markers()).toEqual([]);
  expect(existsSync(join(dir, 'META_MARKER'))).toBe(false);
  // The rows loaded, through the CHECK constraint, the generated column and the index: as a role that may read no file.
  expect(await pgQuery(scratch, 'SELECT count(*)::int AS n FROM public.planted')).toEqual([{ n: 3 }]);
  expect(await pgQuery(scratch, 'SELECT * FROM public.loot')).toEqual([]);
  expect(await pgQuery(scratch, 'SELECT evtname FROM pg_event_trigger')).toEqual([]);
  expect(await pgQuery(scratch, "SELECT extname FROM pg_extension WHERE extname = 'dblink'")).toEqual([]);
  expect(await pgQuery(scratch, "SELECT has_function_privilege('public', 'pg_read_file(text)', 'EXECUTE') AS granted")).toEqual([{ granted: false }]);
  expect(await evilRole()).toEqual([SAFE_EVIL]);
  expect(await pgQuery('postgres', 'SELECT pg_has_role($1, $2, \'MEMBER\') AS member', [evil, plain])).toEqual([{ member: true }]);
  // The allow-listed extensions were installed by the agent's own session, in the schemas the backup had them in.
  expect(await pgQuery(scratch, "SELECT extname, extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1"))
    .toEqual([{ extname: 'citext', schema: 'public' }, { extname: 'pgcrypto', schema: 'crypto' }]);
  expect(await pgQuery(scratch, "SELECT count(*)::int AS n FROM public.notes WHERE name = 'ONE' AND digest = crypto.digest('planted', 'sha256')")).toEqual([{ n: 1 }]);

  expect(run.code).toBe(1);
  expect(report.success).toBe(false);
  expect(report.refused).toEqual(expect.arrayContaining([
    ...DUMP_REFUSALS.map((r) => ({ ...r, expected: false, from: 'dump' })),
    ...ROLE_REFUSALS.map((r) => ({ ...r, expected: true, from: 'roles' })),
  ]));
  for (const r of DUMP_REFUSALS) expect(report.failures).toContainEqual(expect.stringContaining(`left out of the restore, and not expected for this source: ${r.what}`));
  // The counts still match: the payloads changed no data.
  expect(report.tables.every((t: { passed: boolean }) => t.passed)).toBe(true);
  // The password hash the companion carried is nowhere.
  for (const text of [run.stdout, run.stderr, (await s3.getText(report.reportKey))!]) expect(text).not.toContain('planted-stored-key');
  // The identity was dropped once the dump was verified on disk, before the roles or the dump ran.
  const order = logLines(run.stderr).map((l) => l.msg as string);
  const at = (prefix: string) => order.findIndex((m) => m.startsWith(prefix));
  expect(at('dump spooled and verified')).toBeGreaterThanOrEqual(0);
  expect(at('identity dropped')).toBeGreaterThan(at('dump spooled and verified'));
  expect(at('roles and grants applied')).toBeGreaterThan(at('identity dropped'));
  expect(at('the backup\'s SQL runs as')).toBeGreaterThan(at('identity dropped'));

  // Declared, the same left-out entries are notes, and the test passes.
  await dropPgDatabase(scratch);
  await createPgDatabase(scratch);
  const declared = await runAgent(['restore-test', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection,
    '--database', scratch, '--expect-left-out', 'EVENT TRIGGER planted_*; EXTENSION dblink; ACL pg_catalog.*', '--json'], env());
  expect(declared.stderr).not.toContain('restorable restore-test:');
  expect(declared.code).toBe(0);
  expect(JSON.parse(declared.stdout).refused.filter((r: { expected: boolean }) => !r.expected)).toEqual([]);
  expect(markers()).toEqual([]);
});

test('restore: refused as a superuser; with --owner nothing runs, nothing is read, and the result names what was refused', async () => {
  // The restore test created the planted roles (harmless, as checked there); a fresh server would not have them.
  await pgQuery('postgres', `DROP ROLE ${evil}; DROP ROLE ${plain}`);
  await createPgDatabase(target);
  await pgQuery('postgres', `ALTER DATABASE ${target} OWNER TO ${restorer}`);
  const base = ['restore', '--source', source, '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection, '--database', target];
  const refused = await runAgent([...base, '--with-globals'], env());
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('is a superuser: a backup is untrusted input');
  expect(await pgQuery(target, "SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace")).toEqual([{ n: 0 }]);

  const run = await runAgent([...base, '--with-globals', '--owner', restorer, '--json'], env());
  expect(run.stderr).not.toContain('restorable restore:');
  expect(run.code).toBe(0);
  expect(markers()).toEqual([]);
  const result = JSON.parse(run.stdout);
  expect(result.refused).toEqual(expect.arrayContaining(DUMP_REFUSALS));
  expect(result.globals.refused).toEqual(expect.arrayContaining(ROLE_REFUSALS));
  expect(result.loadedAs).toMatch(new RegExp(`^restorable_load_[0-9a-f]{12} as ${restorer}$`));
  expect([...result.installed].sort()).toEqual(['citext', 'pgcrypto']);
  expect(await pgQuery(target, "SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'crypto'")).toEqual([{ owner: restorer }]);
  expect(await pgQuery(target, 'SELECT count(*)::int AS n FROM public.planted')).toEqual([{ n: 3 }]);
  expect(await pgQuery(target, 'SELECT * FROM public.loot')).toEqual([]);
  expect(await pgQuery(target, 'SELECT evtname FROM pg_event_trigger')).toEqual([]);
  expect(await pgQuery(target, "SELECT DISTINCT tableowner AS o FROM pg_tables WHERE schemaname = 'public'")).toEqual([{ o: restorer }]);
  expect(await evilRole()).toEqual([SAFE_EVIL]);
  for (const text of [run.stdout, run.stderr]) expect(text).not.toContain('planted-stored-key');

  // Streamed or spooled, the same: the spooled load reads its table of contents from the file.
  await dropPgDatabase(target);
  await createPgDatabase(target);
  await pgQuery('postgres', `ALTER DATABASE ${target} OWNER TO ${restorer}`);
  const spooled = await runAgent([...base, '--owner', restorer, '--jobs', '2', '--json'], env());
  expect(spooled.code).toBe(0);
  expect(JSON.parse(spooled.stdout).refused).toEqual(expect.arrayContaining(DUMP_REFUSALS));
  expect(markers()).toEqual([]);
  expect(await pgQuery(target, 'SELECT * FROM public.loot')).toEqual([]);
});

test('an extension the backup puts in a schema whose name is not a plain identifier is refused before a superuser creates it', async () => {
  const crafted = uniqueName('planted_schema_src');
  const into = uniqueName('planted_schema_scratch');
  await createPgDatabase(crafted);
  await createPgDatabase(into);
  try {
    // Such names reach the install scripts of CREATE EXTENSION … WITH SCHEMA (CVE-2023-39417 on unpatched servers).
    await pgQuery(crafted, `CREATE SCHEMA "x'y"; CREATE EXTENSION citext WITH SCHEMA "x'y"; CREATE TABLE public.t (v int); INSERT INTO public.t VALUES (1);`);
    const backup = await runAgent(['backup', '--source', 'planted-schema', '--engine', 'postgres', '--bucket', s3.bucket, '--recipient', key.recipient,
      ...connection, '--database', crafted, '--json'], env());
    expect(backup.code).toBe(0);
    const run = await runAgent(['restore-test', '--source', 'planted-schema', '--bucket', s3.bucket, '--identity-file', key.identityFile, ...connection,
      '--database', into, '--json'], env());
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).reason).toContain('whose name is not a plain identifier');
    expect(await pgQuery(into, "SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'citext'")).toEqual([{ n: 0 }]);
  } finally {
    await dropPgDatabase(crafted);
    await dropPgDatabase(into);
  }
});
