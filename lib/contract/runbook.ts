/**
 * The disaster-recovery runbook of one source, rendered at deploy time with the real bucket, region and
 * secret names (by the runbook-writer custom resource) and printed by `restorable runbook`. Pure functions,
 * no aws-cdk-lib: facts in, Markdown out.
 *
 * Every step is given two ways: with the `restorable` agent, and with standard tools alone (aws CLI v2, jq,
 * sha256sum, age, zstd, psql/pg_restore, mariadb/mysql or mongorestore), so that a backup stays restorable when our tool is
 * not there. The commands sit in fenced blocks whose info string marks them for machines (the drill runs
 * them from this very text):
 *
 *     ```sh step=3 via=standard
 *     ```sh step=0 via=standard path=dr
 *
 * `step` is 0 (set the scene), 1 to 8, `glacier` or `key-loss`; `via` is `standard` or `restorable`; `path`
 * (only where the two differ) is `primary` or `dr`. Run the blocks of one path in order, in one shell, in an
 * empty working directory. What the reader must set is a `$TARGET_*` variable, named in step 0.
 */
import { Engine } from './manifest';
import { ReportsCopy, latestKey, normalisePrefix, runbookKey, sourcePrefix } from './names';
import { FETCH_IDENTITY, RunbookPath, RunbookVia, block, quote, standardBlocks } from './runbook-blocks';
import { binlogSection } from './runbook-binlog';
import { MONGODB_WORDS } from './runbook-mongodb';
import { pitrSection } from './runbook-pitr';

/** Where a copy of the backups lives. */
export interface RunbookLocation {
  readonly bucket: string;
  readonly region: string;
}

export interface RunbookFacts {
  readonly source: string;
  readonly engine: Engine;
  /** Key prefix in both buckets ('' or ending in '/'). */
  readonly prefix?: string;
  /**
   * The primary bucket. Left out for a vault's own runbook, rendered by the vault's account (VaultRunbook), which
   * knows nothing of the primary's: it has the DR path alone, from `replica` and `vault`, and lives at
   * `{source}/vault/RUNBOOK.md`, where replication may not write.
   */
  readonly primary?: RunbookLocation;
  /** The replica bucket in the DR region; without it, the runbook says there is no offsite copy. */
  readonly replica?: RunbookLocation;
  /** ARN of the identity secret in the primary region; its replica has the same ARN in the DR region. */
  readonly identitySecretArn?: string;
  /**
   * The replica is a vault, in another account: the DR path acts as the vault's restore role there, and reads the
   * vault's own copy of the identity.
   */
  readonly vault?: RunbookVault;
  /**
   * The source's WAL is archived (PostgreSQL only): the runbook gains its point-in-time recovery section, a base
   * backup and the WAL after it replayed by a server of the source's version up to a chosen time.
   */
  readonly walArchived?: boolean;
  /**
   * The source's binlogs are streamed (MariaDB only): the runbook gains its binlog point-in-time recovery section, the
   * newest dump with binlog coordinates before a chosen time restored, and the binlogs after it replayed up to that time.
   */
  readonly binlogStreamed?: boolean;
}

/** A vault's facts, for its DR path. */
export interface RunbookVault {
  /** The vault's account. */
  readonly account: string;
  /** The role people assume in the vault's account to restore (path included). */
  readonly restoreRoleArn: string;
  /** The vault's copy of the identity: its ARN, or its partial ARN (without the random suffix). */
  readonly identitySecretArn: string;
}

export type { RunbookBlock } from './runbook-blocks';
export { RunbookPath, RunbookVia, runbookBlocks } from './runbook-blocks';
export { PITR_CLOCK_MARGIN_SECONDS, PITR_WAL_MAX_BYTES, pitrScript } from './runbook-pitr';
export { BINLOG_MAX_BYTES, binlogScript } from './runbook-binlog';

/** The same secret's ARN in another region: Secrets Manager replicas keep the name and suffix. */
export function secretArnInRegion(arn: string, region: string): string {
  const parts = arn.split(':');
  if (parts.length < 7 || parts[2] !== 'secretsmanager') throw new Error(`'${arn}' is not a Secrets Manager secret ARN`);
  parts[3] = region;
  return parts.join(':');
}

/** The standard-tool script of one path: steps 0 to 8 in order, the blocks of the other path left out. */
export function standardToolScript(markdown: string, path: RunbookPath): string {
  return standardBlocks(markdown, path, /^\d$/);
}

/** Step 3's standard tools: the dump named by \`$KEY\` and \`manifest.json\`, and its roles companion, downloaded and checked. */
const DOWNLOAD_DUMP = `
aws s3 cp "s3://$BUCKET/$KEY" backup.age
echo "$(jq -r .sha256 manifest.json)  backup.age" | sha256sum -c -
GLOBALS_KEY=$(jq -r '[.companions[] | select(.kind == "globals")][0].key // empty' manifest.json)
if [ -n "$GLOBALS_KEY" ]; then
  aws s3 cp "s3://$BUCKET/$GLOBALS_KEY" globals.age
  echo "$(jq -r '[.companions[] | select(.kind == "globals")][0].sha256' manifest.json)  globals.age" | sha256sum -c -
fi`;

/** Step 4's standard tools: the downloaded dump and companion decrypted and decompressed. */
const decryptDump = (dumpFile: string, globalsFile = 'globals.sql') => `
age -d -i identity.txt backup.age | zstd -d -q > ${dumpFile}
if [ -f globals.age ]; then age -d -i identity.txt globals.age | zstd -d -q > ${globalsFile}; fi`;

/** What the runbook says and runs for one engine. */
export interface EngineWords {
  readonly name: string;
  readonly dumpFile: string;
  /** Where step 4 puts the decrypted roles companion (default globals.sql). */
  readonly globalsFile?: string;
  readonly client: string;
  readonly passwordVariable: string;
  readonly defaultPort: number;
  /** Step 0: what the reader sets beyond host, port, user and database, and what it is. */
  readonly variables: string;
  readonly required: string;
  /** The agent's restore: what comes before it (the empty database), and its words on who runs the backup's SQL. */
  readonly agentRestore: string;
  /** The agent's restore options that say who runs the backup's SQL. */
  readonly agentLoad: string;
  readonly restore: string;
  readonly countRows: string;
  /** The files the standard-tool steps leave behind, removed in step 8. */
  readonly leftovers: string;
  /** MariaDB's client as it runs a backup's SQL (in its sandbox), without the database. */
  readonly load?: string;
}

/** Role attributes a restored PostgreSQL role may have (as the agent's allow-list): none reaches the server's files or programs. */
const PG_SAFE_ROLE = '^ALTER ROLE ([a-z_][a-z0-9_$]*|"[^"\\\\]+") WITH( (NO)?(INHERIT|CREATEDB|LOGIN)| NO(SUPERUSER|CREATEROLE|REPLICATION|BYPASSRLS))+;$';

/** Table-of-contents entries the standard-tool load leaves out, as the agent does: they need a superuser or reach outside the database. */
const PG_LEFT_OUT = '^[0-9]+; [0-9]+ [0-9]+ (EVENT TRIGGER|PROCEDURAL LANGUAGE|EXTENSION|COMMENT - EXTENSION|FOREIGN DATA WRAPPER|SERVER|' +
  'USER MAPPING|SUBSCRIPTION|PUBLICATION|ACCESS METHOD|TEXT SEARCH (PARSER|TEMPLATE)|DEFAULT ACL|' +
  '(ACL|COMMENT|SECURITY LABEL) (pg_catalog|information_schema)|ACL - (LANGUAGE|FOREIGN)) ';

/** Extensions the agent installs for a load (contrib, trusted): the standard-tool steps install the same, nothing else. */
const PG_EXTENSIONS = 'plpgsql pgcrypto citext hstore pg_trgm uuid-ossp ltree btree_gin btree_gist tablefunc unaccent fuzzystrmatch intarray cube earthdistance';

function engineWords(engine: Engine): EngineWords {
  if (engine === Engine.MONGODB) return MONGODB_WORDS;
  if (engine === Engine.POSTGRES) {
    const at = '-h "$TARGET_HOST" -p "$TARGET_PORT"';
    const psql = `psql ${at} -U "$TARGET_USER"`;
    // The owner logs in for the load: its own password, or ~/.pgpass when neither variable is set.
    const asOwner = `PGPASSWORD="\${TARGET_OWNER_PASSWORD:-\${PGPASSWORD:-}}"`;
    return {
      name: 'PostgreSQL', dumpFile: 'dump.pgdump', client: 'psql, pg_restore', passwordVariable: 'PGPASSWORD', defaultPort: 5432,
      variables: `
# TARGET_OWNER: a login role without superuser rights (nor CREATEROLE or pg_execute_server_program and its kind) that will
# own the restored objects: the backup's SQL runs as it, never as a superuser. Its password in TARGET_OWNER_PASSWORD (or ~/.pgpass).`,
      required: ' "${TARGET_OWNER:?set TARGET_OWNER}"',
      agentRestore: `
# The backup is untrusted input: its SQL runs as $TARGET_OWNER (the agent loads as a temporary member of it), never as
# $TARGET_USER when that is a superuser. --load-as-connected-user instead of --owner runs it with $TARGET_USER's rights:
# only for a backup you trust. The database must exist, empty, owned by $TARGET_OWNER:
${psql} -d postgres -c "CREATE DATABASE \\"$TARGET_DATABASE\\" OWNER \\"$TARGET_OWNER\\""`,
      agentLoad: ' --owner "$TARGET_OWNER"',
      restore: `
# The backup is untrusted input: none of its SQL runs as a superuser. $TARGET_USER runs only what is written here; the
# load connects as $TARGET_OWNER itself (never --role from a superuser's session: a RESET ROLE in the backup undoes it).
# Roles: only ALTER ROLE … WITH lines whose every attribute is safe are taken, each run as CREATE ROLE … WITH the same
# attributes, so a role this server has already is left as it is ("already exists" errors are expected). The rest of
# globals.sql (superuser roles, memberships, settings) is shown, not run: apply by hand only what you recognise.
if [ -f globals.sql ]; then
  LC_ALL=C grep -E '${PG_SAFE_ROLE}' globals.sql | sed 's/^ALTER ROLE /CREATE ROLE /' > roles.sql || true
  ${psql} -d postgres -X -q -v ON_ERROR_STOP=0 -f roles.sql
  LC_ALL=C grep -v -E '^(--.*|SET [a-z_]+ = [^;]*;|\\\\(un)?restrict [A-Za-z0-9]+|CREATE ROLE ([a-z_][a-z0-9_$]*|"[^"\\\\]+");|)$' globals.sql |
    grep -v -x -F -f <(sed 's/^CREATE ROLE /ALTER ROLE /' roles.sql) | cat -v | sed 's/^/left out of globals.sql: /' || true
fi
${psql} -d postgres -c "CREATE DATABASE \\"$TARGET_DATABASE\\" OWNER \\"$TARGET_OWNER\\""
# What needs a superuser or reaches outside the database is left out of the load and shown: event triggers, languages,
# extensions (those the agent allows are installed here by $TARGET_USER, which runs none of the backup), foreign data,
# replication, access methods, text-search parsers and templates, system objects, default privileges of other roles.
pg_restore -l dump.pgdump > toc.full
grep -v -E '${PG_LEFT_OUT}' toc.full > toc.list || true
grep -E '${PG_LEFT_OUT}' toc.full | cat -v | sed 's/^/left out of the load: /' || true
for ext in $(sed -n -E 's/^[0-9]+; [0-9]+ [0-9]+ EXTENSION - ([a-z0-9_-]+) $/\\1/p' toc.full); do
  case " ${PG_EXTENSIONS} " in *" $ext "*) ${psql} -d "$TARGET_DATABASE" -c "CREATE EXTENSION IF NOT EXISTS \\"$ext\\"";; esac
done
${asOwner} pg_restore --exit-on-error -L toc.list --no-owner --role="$TARGET_OWNER" \\
  ${at} -U "$TARGET_OWNER" -d "$TARGET_DATABASE" dump.pgdump`,
      // As the owner, the manifest's names passed as psql variables (quoted by psql): the manifest is untrusted too, and
      // a view's functions run with the rights of whoever reads it.
      countRows: `${asOwner} psql ${at} -U "$TARGET_OWNER" -d "$TARGET_DATABASE" -X -Atq -v schema="$schema" -v table="$table" <<< 'SELECT count(*) FROM :"schema".:"table"'`,
      leftovers: 'globals.sql roles.sql toc.full toc.list',
    };
  }
  const mysql = 'mysql -h "$TARGET_HOST" -P "$TARGET_PORT" -u "$TARGET_USER"';
  // A backup is untrusted input: its SQL runs in the client's sandbox (no shell, no files of this machine) with
  // LOAD DATA LOCAL off, and stops at its first error (never --force, which would skip a refused command and go on).
  const load = `${mysql} --sandbox --local-infile=0`;
  return {
    name: 'MariaDB/MySQL', dumpFile: 'dump.sql', client: 'mariadb or mysql', passwordVariable: 'MYSQL_PWD', defaultPort: 3306,
    variables: '',
    required: '',
    agentRestore: `
# The backup is untrusted input: the agent loads it as $TARGET_USER, with the client's --sandbox --local-infile=0. An
# account with rights beyond its databases (FILE, SUPER, CREATE USER…) is refused: connect as one with rights on
# $TARGET_DATABASE alone, or add --load-as-connected-user, only for a backup you trust. (--owner is PostgreSQL's: a
# MariaDB restore refuses it.) --with-globals creates users, which needs CREATE USER: add it only with
# --load-as-connected-user; otherwise take the users and grants as in the standard-tool block. The database must exist, empty:
${load} -e "CREATE DATABASE \\\`$TARGET_DATABASE\\\` CHARACTER SET utf8mb4"`,
    agentLoad: '',
    restore: `
# The backup is untrusted input: the client runs its SQL with --sandbox (no shell, no files of this machine) and
# --local-infile=0, and stops at the first error. Restore as a user with rights on the target database alone unless
# you trust the backup: its triggers and DEFINERs run with the rights they name. (MySQL's client has no --sandbox:
# see the README.) Of the users and grants, only CREATE USER/ROLE and the grants on the backed-up database (moved to
# the new name) are taken; read globals.sql for the rest, and apply by hand only what you recognise.
SOURCE_DATABASE=$(jq -r .database manifest.json)
if [ -f globals.sql ]; then
  grep -E '^CREATE (USER|ROLE) IF NOT EXISTS [^;]*;$' globals.sql | grep -vE '/\\*|unix_socket' > users.sql || true
  grep -E '^GRANT [^;]*;$' globals.sql | grep -F " ON \\\`$SOURCE_DATABASE\\\`." | grep -vE '/\\*|PROXY' |
    sed "s/ ON \\\`$SOURCE_DATABASE\\\`\\\\./ ON \\\`$TARGET_DATABASE\\\`./" > grants.sql || true
  ${load} < users.sql
fi
${load} -e "CREATE DATABASE \\\`$TARGET_DATABASE\\\` CHARACTER SET utf8mb4"
${load} "$TARGET_DATABASE" < dump.sql
if [ -f grants.sql ]; then ${load} < grants.sql; fi`,
    // The manifest is untrusted too: a name with a backquote in it is not put into SQL.
    countRows: `case "$table" in *\\\`*) echo "the manifest names a table with a backquote: $table" >&2; exit 1;; esac; ` +
      `${mysql} --sandbox -N -B "$TARGET_DATABASE" -e "SELECT COUNT(*) FROM \\\`$table\\\`" </dev/null`,
    leftovers: 'globals.sql users.sql grants.sql',
    load,
  };
}

/**
 * The DR scene's lines that act as the vault's restore role: with AWS_PROFILE set (a profile for that role), as it
 * says; otherwise the credentials of `aws sts assume-role`, with MFA_SERIAL and MFA_CODE when the caller is an IAM
 * user (the role's trust policy asks for MFA).
 */
function assumeVaultRole(vault: RunbookVault): string {
  return `
# The vault is in account ${vault.account}: act as its restore role. With a profile for that role, set AWS_PROFILE
# instead; from an IAM user of that account, set MFA_SERIAL (your MFA device's ARN) and MFA_CODE (its current code).
RESTORE_ROLE=${quote(vault.restoreRoleArn)}
if [ -z "\${AWS_PROFILE:-}" ]; then
  CREDENTIALS=$(aws sts assume-role --role-arn "$RESTORE_ROLE" --role-session-name "restore-$SOURCE" \\
    \${MFA_SERIAL:+--serial-number "$MFA_SERIAL" --token-code "\${MFA_CODE:?set MFA_CODE}"} --query Credentials --output json)
  AWS_ACCESS_KEY_ID=$(jq -r .AccessKeyId <<< "$CREDENTIALS")
  AWS_SECRET_ACCESS_KEY=$(jq -r .SecretAccessKey <<< "$CREDENTIALS")
  AWS_SESSION_TOKEN=$(jq -r .SessionToken <<< "$CREDENTIALS")
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  unset CREDENTIALS
fi
aws sts get-caller-identity --query Arn --output text`;
}

/** The title, where it is kept and the table of a vault's own runbook: the vault's facts alone. */
function vaultOwnHeader(facts: RunbookFacts, words: EngineWords, vault: RunbookVault): string {
  const replica = facts.replica!;
  const prefix = normalisePrefix(facts.prefix);
  return `# Disaster recovery runbook: ${facts.source} (the vault's own)

Rendered at deploy time for the ${words.name} source **${facts.source}** by the vault's own account, ${vault.account}, from
what that account knows alone. Stored at \`s3://${replica.bucket}/${runbookKey(prefix, facts.source, ReportsCopy.VAULT)}\` in
${replica.region}, where replication may not write. The runbook beside it, \`${runbookKey(prefix, facts.source)}\`, is the
primary account's, carried here by replication: when the primary account is lost or not to be trusted, follow this one.
Print it, as the vault's restore role, with \`restorable runbook --vault --source ${facts.source} --bucket ${replica.bucket} --region ${replica.region}\`.
\`restorable\` is the agent: the container's entrypoint, or \`node restorable.cjs\` on a workstation.

| | Vault |
|---|---|
| Account | ${vault.account}, as the role \`${vault.restoreRoleArn}\` |
| Region | ${replica.region} |
| Bucket | \`${replica.bucket}\` |
| Identity secret | \`${vault.identitySecretArn}\` (the vault's own copy) |
| Latest pointer | \`${latestKey(prefix, facts.source)}\` |

Every step is given twice: with the \`restorable\` agent, and with standard tools alone (aws CLI v2, jq,
sha256sum, age, zstd, ${words.client}). Run the blocks in order, in one bash shell (the \`dr\` path: there is no
other here). Nothing here puts a secret on a command line: the identity goes to a 0600 file, the database password
stays in \`${words.passwordVariable}\`.`;
}

/**
 * Renders the runbook of one source. Deterministic: the same facts give the same text. Without `primary`, the vault's
 * own runbook: the DR path alone, with the vault's facts (`replica` and `vault`, both required then).
 */
export function renderRunbook(facts: RunbookFacts): string {
  const prefix = normalisePrefix(facts.prefix);
  const words = engineWords(facts.engine);
  const vault = facts.replica ? facts.vault : undefined;
  const primary = facts.primary;
  if (!primary) {
    if (!facts.replica || !vault) throw new Error(`runbook of '${facts.source}': without the primary's bucket it is a vault's own, which needs replica and vault`);
    if (facts.identitySecretArn) throw new Error(`runbook of '${facts.source}': a vault's own runbook names the vault's identity alone, not identitySecretArn`);
  }
  if (facts.walArchived && facts.engine !== Engine.POSTGRES) {
    throw new Error(`runbook of '${facts.source}': walArchived is for PostgreSQL sources, and this one is ${facts.engine}`);
  }
  if (facts.binlogStreamed && facts.engine !== Engine.MYSQL) {
    throw new Error(`runbook of '${facts.source}': binlogStreamed is for MariaDB sources, and this one is ${facts.engine}`);
  }
  const secret = facts.identitySecretArn;
  const drSecret = vault ? vault.identitySecretArn : secret && facts.replica ? secretArnInRegion(secret, facts.replica.region) : undefined;
  const targetVariables = `: "\${TARGET_HOST:?set TARGET_HOST}" "\${TARGET_PORT:=${words.defaultPort}}" "\${TARGET_USER:?set TARGET_USER}" ` +
    `"\${TARGET_DATABASE:?set TARGET_DATABASE}"${words.required}`;
  const scene = (location: RunbookLocation, identity: string | undefined, asRole?: RunbookVault) => `
umask 077 && mkdir -p restore-work && chmod 700 restore-work && cd restore-work
SOURCE=${quote(facts.source)}
BUCKET=${quote(location.bucket)}
PREFIX=${quote(prefix)}
export AWS_REGION=${quote(location.region)}${asRole ? assumeVaultRole(asRole) : ''}
IDENTITY_SECRET=${quote(identity ?? 'SET-ME: the secret or file that holds your age identity')}
# Set these for the database you restore into (it must not exist yet), and the password in ${words.passwordVariable}:${words.variables}${facts.walArchived ? `
# For a point-in-time recovery of the whole server instead ("Point-in-time recovery" below), set PITR_DATA_DIR and not these.
if [ -z "\${PITR_DATA_DIR:-}" ]; then
  ${targetVariables}
fi` : `
${targetVariables}`}`;
  // The agent is told the region as plainly as the aws CLI: the replica's on the DR path, where the primary's would fail.
  const agentSelection = '--source "$SOURCE" --bucket "$BUCKET" ${PREFIX:+--prefix "$PREFIX"} --region "$AWS_REGION"';

  const sections = [
    primary ? `# Disaster recovery runbook: ${facts.source}

Rendered at deploy time for the ${words.name} source **${facts.source}**. Stored at
\`s3://${primary.bucket}/${sourcePrefix(prefix, facts.source)}RUNBOOK.md\`${facts.replica ? vault
    ? ` and, carried there by replication, for when the primary account or ${primary.region} is lost, in the vault: ` +
      `\`s3://${facts.replica.bucket}/${sourcePrefix(prefix, facts.source)}RUNBOOK.md\` in account ${vault.account}, ${facts.replica.region}`
    : ` and, for when ${primary.region} is gone, \`s3://${facts.replica.bucket}/${sourcePrefix(prefix, facts.source)}RUNBOOK.md\` in ${facts.replica.region}` : ''}.
Print it with \`restorable runbook --source ${facts.source} --bucket ${primary.bucket} --region ${primary.region}\`${facts.replica
    ? `\n(from the ${vault ? 'vault, as its restore role' : 'replica'}: \`--bucket ${facts.replica.bucket} --region ${facts.replica.region}\`)` : ''}.${vault
    ? `\nThe vault's account may write its own runbook beside it (VaultRunbook): after a compromise of the primary account, read that one,
\`restorable runbook --vault\`, rather than this copy, which the primary's account wrote.` : ''} \`restorable\` is the agent: the container's
entrypoint, or \`node restorable.cjs\` on a workstation.

| | Primary | Disaster recovery |
|---|---|---|
${vault ? `| Account | the primary's | ${vault.account} (the vault), as the role \`${vault.restoreRoleArn}\` |\n` : ''}| Region | ${primary.region} | ${facts.replica?.region ?? '- (no replica: this store has no offsite copy)'} |
| Bucket | \`${primary.bucket}\` | ${facts.replica ? `\`${facts.replica.bucket}\`` : '-'} |
| Identity secret | ${secret ? `\`${secret}\`` : 'your own identity file (not kept in AWS)'} | ${drSecret ? `\`${drSecret}\`` : '-'} |
| Latest pointer | \`${latestKey(prefix, facts.source)}\` | same key |

Every step is given twice: with the \`restorable\` agent, and with standard tools alone (aws CLI v2, jq,
sha256sum, age, zstd, ${words.client}). Run the blocks of one path in order, in one bash shell. Nothing here
puts a secret on a command line: the identity goes to a 0600 file, the database password stays in
\`${words.passwordVariable}\`.` : vaultOwnHeader(facts, words, vault!),

    primary ? `## 0. Set the scene

Primary region up: read the primary bucket and the identity secret there.

${block('0', RunbookVia.STANDARD, scene(primary, secret), RunbookPath.PRIMARY)}
${facts.replica ? `
${vault
    ? `Primary account lost (or not to be trusted) or primary region down: read the vault, in account ${vault.account} and ` +
      `${facts.replica.region}, as its restore role \`${vault.restoreRoleArn}\`, and the vault's own copy of the identity there.`
    : `Primary region down: read the replica bucket and the identity's replica in ${facts.replica.region}.`}

${block('0', RunbookVia.STANDARD, scene(facts.replica, drSecret, vault), RunbookPath.DR)}
` : ''}
The \`restorable\` commands below use the same variables, the region included (\`--region "$AWS_REGION"\`).` : `## 0. Set the scene

Read the vault, in account ${vault!.account} and ${facts.replica!.region}, as its restore role \`${vault!.restoreRoleArn}\`, and the
vault's own copy of the identity there.

${block('0', RunbookVia.STANDARD, scene(facts.replica!, drSecret, vault), RunbookPath.DR)}

After a compromise of the primary account, the newest versions in the vault may be forged (new versions replicated
over every key: a valid backup of the attacker's, with a manifest to match); the genuine ones are still there, locked.
Restore as the vault was at the last time you know was good: give \`restorable\` \`--as-of TIME\` (ISO 8601, such as
2026-11-26T03:00:00Z), which reads every object of the backup as the newest version S3 stored at or before TIME; with
standard tools, find each object's version with \`aws s3api list-object-versions --bucket "$BUCKET" --prefix KEY\` and
fetch it with \`aws s3api get-object --bucket "$BUCKET" --key KEY --version-id ID FILE\`.

The \`restorable\` commands below use the same variables, the region included (\`--region "$AWS_REGION"\`).`,

    `## 1. Identify the latest good backup

\`latest.json\` names the newest backup that passed verification after upload.

${block('1', RunbookVia.RESTORABLE, `restorable list ${agentSelection}`)}

${block('1', RunbookVia.STANDARD, `
aws s3 cp "s3://$BUCKET/\${PREFIX}$SOURCE/latest.json" latest.json
KEY=$(jq -r .key latest.json)
aws s3 cp "s3://$BUCKET/$(jq -r .manifestKey latest.json)" manifest.json
jq '{key, startedAt, tier, size, sha256, tables: (.tables | length)}' manifest.json`)}

If \`aws s3 cp\` says the object is in an archive storage class, see "A backup in Glacier" below first.`,

    `## 2. Fetch the identity

The age identity opens the backups. Only restore roles (and a break-glass role) may read it.

${block('2', RunbookVia.RESTORABLE, `# restorable reads the secret itself: pass --identity-secret-id "$IDENTITY_SECRET" to verify and restore.
# With an identity file of your own, pass --identity-file FILE instead.`)}

${block('2', RunbookVia.STANDARD, `
${FETCH_IDENTITY}
# Which identity opens this backup: the manifest holds the SHA-256 of the recipient it was encrypted to.
jq -r .recipientFingerprint manifest.json
age-keygen -y identity.txt | while read -r r; do printf '%s' "$r" | sha256sum; done`)}`,

    `## 3. Download the backup and verify its SHA-256

${block('3', RunbookVia.RESTORABLE, `restorable verify ${agentSelection}`)}

${block('3', RunbookVia.STANDARD, DOWNLOAD_DUMP)}

A mismatch means the object is not what was written: take the previous backup (\`restorable list\`) instead.`,

    `## 4. Decrypt and decompress

${block('4', RunbookVia.RESTORABLE, `# Reads the whole dump through age and zstd without restoring it:
restorable verify ${agentSelection} --identity-secret-id "$IDENTITY_SECRET"`)}

${block('4', RunbookVia.STANDARD, decryptDump(words.dumpFile, words.globalsFile))}`,

    `## 5. Stop the application

Stop everything that writes to the database you are about to replace or re-point (placeholder: your
application's own procedure), so that nothing writes to it half-way through.

${block('5', RunbookVia.STANDARD, '# Placeholder: stop your application here (scale it to zero, maintenance page on).')}`,

    `## 6. Restore, with roles and grants

Restore into a new database (\`$TARGET_DATABASE\`), then point the application at it.

${block('6', RunbookVia.RESTORABLE, `${words.agentRestore}
restorable restore ${agentSelection} --identity-secret-id "$IDENTITY_SECRET" \\
  --host "$TARGET_HOST" --port "$TARGET_PORT" --user "$TARGET_USER" --database "$TARGET_DATABASE"${words.agentLoad}${facts.engine === Engine.POSTGRES ? ' --with-globals' : ''} --json > restore-result.json`)}

${block('6', RunbookVia.STANDARD, words.restore)}`,

    `## 7. Verify against the manifest's row counts

${block('7', RunbookVia.RESTORABLE, `# The manifest's counts, as restorable restore reported them; count the restored tables as in the block below
# (the weekly restore test makes this comparison on a scratch database).
jq -r '.tables[] | [.schema, .table, .rows] | @tsv' restore-result.json`)}

${block('7', RunbookVia.STANDARD, `
jq -r '.tables[] | [.schema, .table, .rows] | @tsv' manifest.json | while IFS=$'\\t' read -r schema table rows; do
  actual=$(${words.countRows})
  if [ "$actual" != "$rows" ]; then echo "MISMATCH $schema.$table: manifest $rows, restored $actual" >&2; exit 1; fi
  echo "ok $schema.$table $rows"
done
echo "row counts match the manifest"`)}`,

    `## 8. Restart

Point the application at \`$TARGET_DATABASE\` and start it (placeholder: your own procedure). Then remove
the decrypted files and the identity copy.

${block('8', RunbookVia.STANDARD, `
# Placeholder: start your application here.
rm -f identity.txt ${words.dumpFile} ${words.leftovers} backup.age globals.age`)}`,

    ...(facts.walArchived ? [pitrSection(agentSelection)] : []),
    ...(facts.binlogStreamed ? [binlogSection({
      agentSelection, download: DOWNLOAD_DUMP, decrypt: decryptDump(words.dumpFile), restore: words.restore, load: words.load!,
      leftovers: `${words.dumpFile} ${words.leftovers}`,
    })] : []),

    `## A backup in Glacier

Older backups (weekly, monthly tiers) may sit in an archive class: they must be restored (copied back
temporarily) before they can be read. Bulk takes up to 48 hours, Standard 3 to 5 hours (12 for Deep
Archive), Expedited minutes (not for Deep Archive). Restore the dump, its manifest and its companions.

${block('glacier', RunbookVia.RESTORABLE, `restorable restore ${agentSelection} --identity-secret-id "$IDENTITY_SECRET" \\
  --host "$TARGET_HOST" --port "$TARGET_PORT" --user "$TARGET_USER" --database "$TARGET_DATABASE"${words.agentLoad} --retrieval-tier Standard --wait`)}

${block('glacier', RunbookVia.STANDARD, `
aws s3api head-object --bucket "$BUCKET" --key "$KEY" --query '[StorageClass, Restore]'
# The dump, its manifest and its companions share the key's stem.
for k in $(aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "\${KEY%%.*}" --query 'Contents[].Key' --output text); do
  aws s3api restore-object --bucket "$BUCKET" --key "$k" --restore-request '{"Days":3,"GlacierJobParameters":{"Tier":"Standard"}}' || true
done
until aws s3api head-object --bucket "$BUCKET" --key "$KEY" --query Restore --output text | grep -q 'ongoing-request="false"'; do
  sleep 600
done`)}

Then go on with step 1.`,

    `## Key loss

Without the identity, no backup can be decrypted: nobody, including AWS, can recover it.

1. ${primary ? 'Primary secret' : 'The vault\'s copy'} deleted by mistake: it can be restored within its recovery window.
2. ${vault
    ? `Primary account or region lost: the vault's own copy in account ${vault.account}, ${facts.replica!.region}, holds every identity the primary's held when it was last copied (path \`dr\` above, as the vault's restore role).`
    : `Primary region gone: the secret's replica in ${facts.replica?.region ?? 'the DR region'} holds the same identity file (path \`dr\` above).`}
3. Secret overwritten: an earlier version still holds the identities.
4. Your offline copy (a break-glass vault) if you keep one; compare fingerprints as in step 2.

${block('key-loss', RunbookVia.STANDARD, `
aws secretsmanager restore-secret --secret-id "$IDENTITY_SECRET"
aws secretsmanager get-secret-value --secret-id "$IDENTITY_SECRET" --version-stage AWSPREVIOUS --output json | jq -r .SecretString > identity.txt`)}

${block('key-loss', RunbookVia.RESTORABLE, `# After recovery, prove the identity opens the latest backup:
restorable verify ${agentSelection} --identity-file identity.txt`)}

If every copy is lost, the existing backups are unreadable. Then, at once: raise the BackupKeys
\`generation\` and deploy (a new key pair; dump tasks encrypt to it from then on), run a backup of every
source, and restore-test it. Keep an offline copy of the new identity.`,
  ];
  return `${sections.join('\n\n')}\n`;
}
