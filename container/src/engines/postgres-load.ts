/**
 * Who runs a PostgreSQL backup's SQL, and what of it runs. A restore runs the backup's CHECK constraints, defaults
 * and triggers as the loading role while rows load, so that role must not be a superuser (nor hold
 * pg_execute_server_program, pg_read_server_files, pg_write_server_files or CREATEROLE): whatever the backup holds then
 * runs without a path to the server's files and programs.
 *
 * - Restore tests (a scratch database): the connecting superuser session creates a temporary login role, makes it the
 *   owner of the scratch database and a member of the roles the backup's companion created, and runs nothing from the
 *   backup itself. The load connects as that role (never `--role` from a superuser session: the backup's SQL could
 *   RESET ROLE), and validation reads through it too.
 * - Operator restores: a connecting user without those rights loads as itself. A superuser (or a user with those
 *   rights) loads only when the operator names `--owner ROLE`, a role without them: a temporary NOINHERIT member of
 *   ROLE loads with `--role=ROLE` (a RESET ROLE in the backup leaves it with no rights at all); or when the operator
 *   says `--load-as-connected-user`, for a backup they trust.
 *
 * In every case the archive's table of contents is read first and filtered (postgres-toc.ts), and the allow-listed
 * extensions it names are installed by the connecting session before the load.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'pg';
import { Connection } from '../shared/connection';
import { AgentError, UsageError, redactor } from '../shared/errors';
import { log } from '../shared/log';
import { StageSpec } from '../shared/pipeline';
import { DumpPeek, LoadOptions, LoadPlan, Refusal, RestoreStageOptions } from './engine';
import { quoteIdent } from './postgres-roles';
import { extensionSchemas, nameOf, ownerOf, parseTocLine, planToc } from './postgres-toc';

/** A schema name an extension may be installed into by the agent's superuser session. */
const PLAIN_SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The predefined roles that reach the server's programs and files. */
export const SERVER_ROLES = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'] as const;

/** At most this much of a streamed dump is kept while its table of contents is read. */
const PEEK_LIMIT = 256 * 1024 * 1024;

export interface RoleRights {
  readonly name: string;
  readonly superuser: boolean;
  readonly createRole: boolean;
  /** The server roles it is a member of, directly or not. */
  readonly serverRoles: readonly string[];
  /** Every predefined role it is a member of, directly or not (pg_read_all_data, pg_monitor…). */
  readonly predefined: readonly string[];
}

/** What makes a role unfit to run a backup's SQL, or undefined. */
export function privilegeProblem(rights: RoleRights): string | undefined {
  if (rights.superuser) return `${rights.name} is a superuser`;
  if (rights.createRole) return `${rights.name} has CREATEROLE (it may grant itself pg_execute_server_program)`;
  if (rights.serverRoles.length) return `${rights.name} is a member of ${rights.serverRoles.join(', ')}`;
  return undefined;
}

export async function roleRights(client: Client, role: string): Promise<RoleRights | undefined> {
  const rows = await client.query<{ rolsuper: boolean; rolcreaterole: boolean; server: string[]; predefined: string[] }>(
    `SELECT rolsuper, rolcreaterole,
       ARRAY(SELECT s FROM unnest($2::text[]) s WHERE pg_has_role(r.oid, s, 'MEMBER')) AS server,
       ARRAY(SELECT p.rolname FROM pg_roles p WHERE p.rolname LIKE 'pg\\_%' AND p.rolname <> 'pg_database_owner' AND p.oid <> r.oid
         AND pg_has_role(r.oid, p.oid, 'MEMBER') ORDER BY 1)::text[] AS predefined
     FROM pg_roles r WHERE rolname = $1`, [role, [...SERVER_ROLES]]);
  const row = rows.rows[0];
  return row && { name: role, superuser: row.rolsuper, createRole: row.rolcreaterole, serverRoles: row.server, predefined: row.predefined };
}

/** Runs pg_restore with the dump on stdin (a buffer) or as a file, and returns what it printed. */
function pgRestoreText(args: readonly string[], input?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('pg_restore', args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => { err = (err + c.toString()).slice(-2000); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out).toString('utf8'))
      : reject(new AgentError(`pg_restore could not read the archive's table of contents: ${redactor.redact(err.trim()) || `exit code ${code}`}`))));
    if (input && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

/**
 * `pg_restore -l` over the start of a stream: pg_restore exits once it has read the table of contents, which a
 * custom-format archive holds at its start; the bytes it read are kept for a second look (the extensions' schemas).
 */
function listFromStream(stream: Readable): Promise<{ listing: string; head: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn('pg_restore', ['-l'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const kept: Buffer[] = [];
    let keptBytes = 0;
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => { err = (err + c.toString()).slice(-2000); });
    child.stdin.on('error', () => undefined);
    stream.on('error', () => child.stdin.end());
    stream.on('data', (chunk: Buffer) => {
      if (keptBytes < PEEK_LIMIT) { kept.push(chunk); keptBytes += chunk.length; }
      if (!child.stdin.write(chunk)) {
        stream.pause();
        child.stdin.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => child.stdin.end());
    child.on('error', reject);
    child.on('close', (code) => {
      stream.destroy();
      if (code === 0) resolve({ listing: Buffer.concat(out).toString('utf8'), head: Buffer.concat(kept) });
      else reject(new AgentError(`pg_restore could not read the archive's table of contents: ${redactor.redact(err.trim()) || `exit code ${code}`}`));
    });
  });
}

/** The table of contents, and a way to print chosen entries' SQL (for the extensions' schemas). */
async function readToc(dump: DumpPeek): Promise<{ listing: string; script: (list: string) => Promise<string> }> {
  if ('file' in dump) {
    const listing = await pgRestoreText(['-l', dump.file]);
    return { listing, script: (list) => pgRestoreText(['-L', list, '-f', '-', dump.file]) };
  }
  const { listing, head } = await listFromStream(dump.open());
  return { listing, script: (list) => pgRestoreText(['-L', list, '-f', '-'], head) };
}

function libpq(c: Connection): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database,
    ...(c.password !== undefined ? { PGPASSWORD: c.password } : { PGPASSWORD: undefined }) };
}

/**
 * Plans the load: who loads, what of the archive loads, and the extensions installed first. `admin` is the connecting
 * session, on the target database.
 */
export async function planPostgresLoad(admin: Client, connection: Connection, dump: DumpPeek, options: LoadOptions): Promise<LoadPlan> {
  const me = (await roleRights(admin, connection.user)) ?? { name: connection.user, superuser: false, createRole: false, serverRoles: [], predefined: [] };
  const privileged = privilegeProblem(me);
  const dir = mkdtempSync(join(tmpdir(), 'restorable-load-'));
  let temporary: string | undefined;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    rmSync(dir, { recursive: true, force: true });
    if (!temporary) return;
    const heir = options.scratch ? connection.user : options.owner!;
    try {
      if (options.scratch) await admin.query(`ALTER DATABASE ${quoteIdent(connection.database)} OWNER TO ${quoteIdent(connection.user)}`);
      await admin.query(`REASSIGN OWNED BY ${quoteIdent(temporary)} TO ${quoteIdent(heir)}`);
      await admin.query(`DROP OWNED BY ${quoteIdent(temporary)}`);
      await admin.query(`DROP ROLE ${quoteIdent(temporary)}`);
    } catch (err) {
      log.warn(`the temporary loading role ${temporary} could not be removed; drop it by hand`, { error: redactor.redact((err as Error).message) });
    }
  };
  try {
    let load: Connection = connection;
    let setRole: string | undefined;
    /** Whose rights decide which owners the load may keep. */
    let actor = connection.user;
    const makeTemporary = async (inherit: boolean): Promise<Connection> => {
      temporary = `restorable_load_${randomBytes(6).toString('hex')}`;
      const password = randomBytes(24).toString('base64url');
      redactor.add(password);
      // VALID UNTIL: should the agent die before it removes the role, its login lapses on its own.
      const until = new Date(Date.now() + 24 * 3600_000).toISOString();
      await admin.query(`CREATE ROLE ${quoteIdent(temporary)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ` +
        `${inherit ? 'INHERIT' : 'NOINHERIT'} PASSWORD '${password}' VALID UNTIL '${until}'`);
      await admin.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${quoteIdent(connection.database)} TO ${quoteIdent(temporary)}`);
      return { ...connection, user: temporary, password };
    };
    if (options.scratch) {
      if (privileged) {
        load = await makeTemporary(true);
        actor = temporary!;
        await admin.query(`ALTER DATABASE ${quoteIdent(connection.database)} OWNER TO ${quoteIdent(temporary!)}`);
        // Before PostgreSQL 14 the public schema belongs to the bootstrap superuser, not to the database's owner.
        const publicOwner = (await admin.query<{ owner: string }>("SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = 'public'")).rows[0]?.owner;
        if (publicOwner !== undefined && publicOwner !== 'pg_database_owner') await admin.query(`ALTER SCHEMA public OWNER TO ${quoteIdent(temporary!)}`);
        for (const role of options.createdRoles) {
          const rights = await roleRights(admin, role);
          if (rights && !privilegeProblem(rights)) await admin.query(`GRANT ${quoteIdent(role)} TO ${quoteIdent(temporary!)}`);
        }
      }
    } else if (options.owner !== undefined) {
      const rights = await roleRights(admin, options.owner);
      if (!rights) throw new UsageError(`--owner ${options.owner}: there is no such role on the target server`);
      const problem = privilegeProblem(rights);
      if (problem) throw new UsageError(`--owner ${options.owner}: ${problem}; name a role without superuser rights, or load as the connecting user with --load-as-connected-user (only for a backup you trust)`);
      setRole = options.owner;
      actor = options.owner;
      if (privileged) {
        load = await makeTemporary(false);
        await admin.query(`GRANT ${quoteIdent(options.owner)} TO ${quoteIdent(temporary!)}`);
      }
    } else if (privileged && !options.asConnectedUser) {
      throw new UsageError(`${privileged}: a backup is untrusted input, and its SQL (CHECK constraints, defaults, triggers) would run with those rights. ` +
        'Name the role that will own the restored objects with --owner ROLE (a role without superuser rights; the agent loads as a temporary member ' +
        'of it), connect as such a role, or add --load-as-connected-user to run the backup\'s SQL with your rights (only for a backup you trust).');
    }

    const toc = await readToc(dump);
    const owners = [...new Set(toc.listing.split('\n').map(parseTocLine).filter((e) => e !== undefined).map((e) => ownerOf(e!)).filter(Boolean))];
    const actable = new Set((await admin.query<{ r: string }>(
      `SELECT r FROM unnest($1::text[]) r WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) AND pg_has_role($2, r, 'MEMBER')`,
      [owners, actor])).rows.map((row) => row.r));
    const plan = planToc(toc.listing, (role) => actable.has(role));
    const refused: Refusal[] = [...plan.refused];
    let list = plan.list;

    // Allow-listed extensions: installed here, by the connecting session, into the schema the backup had them in.
    const installed: string[] = [];
    if (plan.extensions.length) {
      const extList = join(dir, 'extensions.list');
      writeFileSync(extList, toc.listing.split('\n').filter((l) => { const e = parseTocLine(l); return e?.desc === 'EXTENSION' && plan.extensions.includes(nameOf(e)); }).join('\n') + '\n');
      const schemas = extensionSchemas(await toc.script(extList));
      const present = new Set((await admin.query<{ extname: string }>('SELECT extname FROM pg_extension')).rows.map((r) => r.extname));
      const available = new Set((await admin.query<{ name: string }>('SELECT name FROM pg_available_extensions')).rows.map((r) => r.name));
      const schemaOwner = temporary && options.scratch ? temporary : (setRole ?? connection.user);
      for (const name of plan.extensions) {
        if (present.has(name)) continue;
        if (!available.has(name)) throw new AgentError(`the backup uses the extension ${name}, which the target server does not have: install it on the server (its package), then restore again`);
        const schema = schemas.get(name) ?? 'public';
        // The name comes from the backup and reaches a superuser's CREATE EXTENSION, whose install scripts substitute
        // it (CVE-2023-39417 on unpatched servers): only plain identifiers pass.
        if (!PLAIN_SCHEMA_NAME.test(schema)) {
          throw new AgentError(`the backup installs the extension ${name} into the schema ${JSON.stringify(schema)}, whose name is not a plain ` +
            'identifier (lower-case letters, digits and _): refusing to create it as a superuser; restore as a role that owns the target instead');
        }
        const exists = (await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount;
        if (!exists) {
          await admin.query(`CREATE SCHEMA ${quoteIdent(schema)} AUTHORIZATION ${quoteIdent(schemaOwner)}`);
          // The schema is there now: its own entry would fail the load.
          list = list.split('\n').filter((l) => { const e = parseTocLine(l); return !(e?.desc === 'SCHEMA' && nameOf(e) === schema); }).join('\n');
        }
        try {
          await admin.query(`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(name)} WITH SCHEMA ${quoteIdent(schema)}`);
        } catch (err) {
          throw new AgentError(`installing the extension ${name} the backup uses failed: ${redactor.redact((err as Error).message)}`);
        }
        installed.push(name);
      }
    }

    // pg_restore keeps every owner or none. A restore test keeps none: a new owner would also need CREATE on the schema,
    // which a superuser's restore at the source never asked for; the objects and rows are what it proves.
    const foreign = [...plan.owners].filter(([owner]) => options.scratch || !actable.has(owner));
    const noOwner = foreign.length > 0;
    const becomes = setRole ?? load.user;
    for (const [owner, count] of foreign) {
      const rights = await roleRights(admin, owner);
      const why = options.scratch ? 'a restore test restores no owners'
        : !rights ? `${owner} does not exist here` : privilegeProblem(rights) ?? `the loading role may not act as ${owner}`;
      refused.push({ what: `ownership by ${owner} (${count} entries)`, why: `${why}: the objects are restored owned by ${becomes}` +
        (!options.scratch && plan.owners.size > foreign.length ? ' (pg_restore keeps every owner or none, so the others\' too)' : '') });
    }
    const listFile = join(dir, 'load.list');
    writeFileSync(listFile, list);
    for (const r of refused) log.warn(`left out of the restore: ${r.what}: ${r.why}`);
    if (installed.length) log.info('extensions installed before the load', { extensions: installed.join(', ') });
    const loadedAs = setRole ? `${load.user} as ${setRole}` : load.user;
    log.info('the backup\'s SQL runs as', { role: loadedAs, entries: plan.kept, leftOut: refused.length });
    return {
      refused, installed, loadedAs, connection: load, release,
      stage(stage: RestoreStageOptions): StageSpec {
        const input = stage.file ? [`--jobs=${stage.jobs ?? 1}`, stage.file] : ['--single-transaction'];
        return {
          name: 'pg_restore',
          command: 'pg_restore',
          args: ['--no-password', '--exit-on-error', `--dbname=${load.database}`, `--use-list=${listFile}`,
            ...(noOwner ? ['--no-owner'] : []), ...(setRole ? [`--role=${setRole}`] : []),
            ...(stage.clean ? ['--clean', '--if-exists'] : []), ...input],
          env: libpq(load),
        };
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
