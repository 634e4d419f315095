/**
 * The point-in-time recovery section of a WAL-archived PostgreSQL source's runbook (see runbook.ts): steps pitr1 to
 * pitr5, drilled by test/container/runbook-drill-pitr.test.ts.
 */
import { FETCH_IDENTITY, RunbookPath, RunbookVia, block, decryptVerified, standardBlocks } from './runbook-blocks';
import { BASE_DIR, LATEST_FILE, MANIFEST_SUFFIX, STORED_SUFFIX, WAL_DIR } from './names';
import { WAL_METADATA } from './wal';

/** The standard-tool script of a point-in-time recovery on one path: the scene (step 0), then steps pitr1 to pitr5. */
export function pitrScript(markdown: string, path: RunbookPath): string {
  return standardBlocks(markdown, path, /^(0|pitr\d)$/);
}

/** How long after the target a WAL object may have been stored and still be needed: a margin for the clocks of server and S3. */
export const PITR_CLOCK_MARGIN_SECONDS = 300;

/** The most a WAL file's recorded plaintext size may be before the standard tools refuse it unread (1 GiB, PostgreSQL's largest segment). */
export const PITR_WAL_MAX_BYTES = 1024 * 1024 * 1024;

/**
 * The point-in-time recovery section of a WAL-archived PostgreSQL source: the newest base backup that finished before
 * the target, the WAL after it fetched and verified by the reader, and a server of the source's version replaying it.
 * The server never holds the identity or AWS credentials: it starts with an empty environment once the identity file
 * is gone, its restore_command only copies from a local directory, and the base backup's own settings (which can
 * run programs or load libraries) are set aside unread.
 */
export function pitrSection(agentSelection: string): string {
  return `## Point-in-time recovery

This source's WAL is archived: besides its dumps, it can be recovered to any moment between its oldest base backup
and its newest archived WAL, as a whole server (every database, every role) in a new data directory. You need the
PostgreSQL server programs of the source's major version (\`$PG_BIN\`), disk for the whole cluster, and to run these
steps as the operating-system user the recovered server will run as (not root, and holding no AWS credentials of its
own in ~/.aws): first step 0's block above, with \`PITR_DATA_DIR\` set (then the \`TARGET_*\` variables are not needed).
The base backup and the WAL are untrusted input, as a dump is: you fetch and verify them; the server gets neither the
identity nor your credentials. A recovered cluster is the backup's content, and so is everything it runs: its catalog
holds settings that take effect when someone connects (a role's \`session_preload_libraries\`, say), and a superuser's
SQL can run programs as the server's user. Run these steps, and so the server, as a user that holds nothing of yours
(no AWS credentials in its home, not your own login), ideally on a machine without network; the server listens on no
TCP port, only on a socket in this 0700 directory, and admits only this operating-system user, as \`$PITR_USER\`.

${block('pitr1', RunbookVia.RESTORABLE, `# Picks the newest base backup that finished before the target, fetches and verifies it and the WAL after it (each
# file's SHA-256 before PostgreSQL sees it), starts the server with --port and reports the time it recovered to:
restorable restore ${agentSelection} --to "$PITR_TARGET_TIME" --data-dir "$PITR_DATA_DIR" \\
  --identity-secret-id "$IDENTITY_SECRET" --port "$PITR_PORT" --pg-bin "$PG_BIN" --json > pitr-result.json`)}

### 1. Choose the base backup

${block('pitr1', RunbookVia.STANDARD, `
# PITR_DATA_DIR: where the recovered cluster goes (absent or empty); PITR_TARGET_TIME: the time to recover to, ISO 8601
# in UTC (such as 2026-11-26T03:00:00Z), or latest for everything archived; PG_BIN: the server programs of the source's
# major version (such as /usr/lib/postgresql/15/bin); PITR_PORT: a free port; PITR_USER: a superuser of the source.
: "\${PITR_DATA_DIR:?set PITR_DATA_DIR}" "\${PITR_TARGET_TIME:?set PITR_TARGET_TIME}" "\${PG_BIN:?set PG_BIN}" "\${PITR_PORT:=5433}" "\${PITR_USER:=postgres}"
if [ -n "$(ls -A "$PITR_DATA_DIR" 2>/dev/null)" ]; then echo "$PITR_DATA_DIR is not empty: give a new or empty directory" >&2; exit 1; fi
BASE_PREFIX="\${PREFIX}$SOURCE/${BASE_DIR}/"
if [ "$PITR_TARGET_TIME" = latest ]; then
  aws s3 cp "s3://$BUCKET/\${BASE_PREFIX}${LATEST_FILE}" base-latest.json
  aws s3 cp "s3://$BUCKET/$(jq -r .manifestKey base-latest.json)" base-manifest.json
else
  TARGET_EPOCH=$(date -u -d "$PITR_TARGET_TIME" +%s)
  # The newest base backup that finished before the target (keys sort by the time each started).
  aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$BASE_PREFIX" --query "Contents[?ends_with(Key, '${MANIFEST_SUFFIX}')].Key" \\
    --output text | tr '\\t' '\\n' | sort -r > base-manifests.txt
  rm -f base-manifest.json
  while read -r m; do
    if [ -z "$m" ] || [ "$m" = None ]; then continue; fi
    aws s3 cp --quiet "s3://$BUCKET/$m" candidate.json
    if [ "$(date -u -d "$(jq -r .finishedAt candidate.json)" +%s)" -lt "$TARGET_EPOCH" ]; then mv candidate.json base-manifest.json; break; fi
  done < base-manifests.txt
  if [ ! -f base-manifest.json ]; then echo "no base backup of $SOURCE finished before $PITR_TARGET_TIME" >&2; exit 1; fi
fi
BASE_KEY=$(jq -r .key base-manifest.json)
jq '{key, startedAt, finishedAt, tier, size, sha256, timeline, startWalFile, serverVersion}' base-manifest.json`)}

### 2. Download, verify and unpack it

${block('pitr2', RunbookVia.STANDARD, `
${FETCH_IDENTITY}
aws s3 cp "s3://$BUCKET/$BASE_KEY" base.tar.zst.age
echo "$(jq -r .sha256 base-manifest.json)  base.tar.zst.age" | sha256sum -c -
TAR_SIZE=$(jq -r .tarSize base-manifest.json)
if [[ ! "$TAR_SIZE" =~ ^[0-9]{1,15}$ ]]; then echo "$BASE_KEY: its manifest records no tar size" >&2; exit 1; fi
# At most one byte more than the manifest records: a backup that decompresses to more stops here, before it fills the disk.
if ! age -d -i identity.txt base.tar.zst.age | zstd -d -q | head -c "$((TAR_SIZE + 1))" > base.tar || [ "$(stat -c %s base.tar)" != "$TAR_SIZE" ]; then
  rm -f base.tar; echo "$BASE_KEY does not decrypt and decompress to the $TAR_SIZE bytes its manifest records: stopped" >&2; exit 1
fi
rm base.tar.zst.age
# Only plain files and directories under relative names are unpacked: a link or a name outside the directory is refused.
ODD=$(tar -tvf base.tar | grep -v -E '^[-d]' || true)
OUTSIDE=$(tar -tf base.tar | grep -E '(^/|(^|/)[.][.](/|$))' || true)
if [ -n "$ODD$OUTSIDE" ]; then printf 'the base backup holds links, special files or names outside its directory; not unpacked:\\n%s\\n%s\\n' "$ODD" "$OUTSIDE" >&2; exit 1; fi
mkdir -p "$PITR_DATA_DIR" && chmod 700 "$PITR_DATA_DIR"
tar -x --no-same-owner -f base.tar -C "$PITR_DATA_DIR"
rm base.tar
if [ ! -f "$PITR_DATA_DIR/PG_VERSION" ] || [ ! -f "$PITR_DATA_DIR/backup_label" ] || [ -s "$PITR_DATA_DIR/tablespace_map" ]; then
  echo "$BASE_KEY is not a base backup of one directory (PG_VERSION and backup_label, no tablespaces)" >&2; exit 1
fi`)}

### 3. Fetch and verify the WAL after it

Every WAL file from the base backup's start onward, up to the first one stored more than ${PITR_CLOCK_MARGIN_SECONDS / 60} minutes after
the target (for \`latest\`, all of them), each checked against the SHA-256 its object records
(\`x-amz-meta-${WAL_METADATA.plaintextSha256}\`) and decompressed to no more than the size it records
(\`x-amz-meta-${WAL_METADATA.plaintextSize}\`, at most 1 GiB). A receiver's uploads of a segment still being written
(\`….partial.…\`) are left out: the newest seconds they hold are the agent's (\`restore --to latest\`).

${block('pitr3', RunbookVia.STANDARD, `
WAL_PREFIX="\${PREFIX}$SOURCE/${WAL_DIR}/"
START_WAL=$(jq -r .startWalFile base-manifest.json)
mkdir -p wal-restore
aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$WAL_PREFIX" --start-after "$WAL_PREFIX\${START_WAL:0:8}" \\
  --query 'Contents[].[Key, LastModified]' --output text > wal-objects.tsv
WAL_FILES=0
while IFS=$'\\t' read -r key modified; do
  if [ -z "$key" ] || [ "$key" = None ]; then continue; fi
  name=\${key#"$WAL_PREFIX"}; name=\${name%${STORED_SUFFIX}}
  if [[ "$name" =~ ^[0-9A-F]{24}$ ]]; then
    if [[ "$name" < "$START_WAL" ]]; then continue; fi
  elif [[ ! "$name" =~ ^[0-9A-F]{8}[.]history$ ]]; then
    continue # a backup label, a partial segment
  fi
  aws s3api get-object --bucket "$BUCKET" --key "$key" wal-object.age > wal-object.json
  expected=$(jq -r '.Metadata["${WAL_METADATA.plaintextSha256}"] // empty' wal-object.json)
  if [[ ! "$expected" =~ ^[0-9a-f]{64}$ ]]; then echo "$key records no plaintext SHA-256: not archived by Restorable" >&2; exit 1; fi
  size=$(jq -r '.Metadata["${WAL_METADATA.plaintextSize}"] // empty' wal-object.json)
  if [[ ! "$size" =~ ^[0-9]{1,10}$ ]] || [ "$size" -gt ${PITR_WAL_MAX_BYTES} ]; then
    echo "$key records no plaintext size of at most 1 GiB ('$size'): not a WAL file, stopped" >&2; exit 1
  fi
${decryptVerified({ object: 'wal-object.age', dir: 'wal-restore', nameVariable: 'name', recorded: 'metadata', what: 'archived' })}
  WAL_FILES=$((WAL_FILES + 1))
  if [ "$PITR_TARGET_TIME" != latest ] && [ "$(date -u -d "$modified" +%s)" -gt $((TARGET_EPOCH + ${PITR_CLOCK_MARGIN_SECONDS})) ]; then break; fi
done < wal-objects.tsv
rm -f wal-object.age wal-object.json identity.txt
echo "$WAL_FILES WAL files fetched and verified"`)}

### 4. Recover

The base backup's own settings files are set aside as \`*.from-backup\` (read them before you take anything from
them: a setting can run a program or load a library), and the server starts with these alone: no TCP port, no logical
replication workers (a recovered subscriber must not connect to its publisher), reachable only through a 0700 socket
in this 0700 directory, by this operating-system user alone (peer authentication), as \`$PITR_USER\`. Its restore_command only copies from \`wal-restore\`, checking each file's SHA-256 again:
it exits 1 for a file that is not there (PostgreSQL asks for some that never existed) and 255 for one that does not
match, which stops recovery rather than ending it early.

${block('pitr4', RunbookVia.STANDARD, `
for f in postgresql.conf postgresql.auto.conf pg_hba.conf pg_ident.conf; do
  if [ -f "$PITR_DATA_DIR/$f" ]; then mv "$PITR_DATA_DIR/$f" "$PITR_DATA_DIR/$f.from-backup"; fi
done
case "$PWD" in *[!A-Za-z0-9/._-]*) echo "run from a directory whose path has no spaces or quotes (it goes into the settings)" >&2; exit 1;; esac
case "$PITR_USER$(id -un)" in *[!A-Za-z0-9_.-]*) echo "PITR_USER and your user name must be plain names (they go into pg_ident.conf)" >&2; exit 1;; esac
# The server's socket is here: only this user may enter the directory.
chmod 700 "$PWD"
WAL_DIR="$PWD/wal-restore"
cat > "$PITR_DATA_DIR/postgresql.conf" <<SETTINGS
port = $PITR_PORT
listen_addresses = ''
unix_socket_directories = '$PWD'
unix_socket_permissions = 0700
max_logical_replication_workers = 0
archive_mode = off
hot_standby = off
restore_command = 'test -f $WAL_DIR/%f || exit 1; (cd $WAL_DIR && sha256sum -c --status %f.sha256) || exit 255; cp $WAL_DIR/%f "%p" || exit 255'
recovery_target_timeline = 'latest'
recovery_target_action = 'promote'
SETTINGS
if [ "$PITR_TARGET_TIME" != latest ]; then
  # PostgreSQL takes no zone abbreviation (such as Z) here: the same instant, with its offset.
  echo "recovery_target_time = '$(date -u -d "$PITR_TARGET_TIME" '+%Y-%m-%d %H:%M:%S.%6N+00')'" >> "$PITR_DATA_DIR/postgresql.conf"
fi
# Over the socket alone, and only this operating-system user, as PITR_USER.
printf 'local all all peer map=pitr\\n' > "$PITR_DATA_DIR/pg_hba.conf"
printf 'pitr %s %s\\n' "$(id -un)" "$PITR_USER" > "$PITR_DATA_DIR/pg_ident.conf"
touch "$PITR_DATA_DIR/recovery.signal"
# An empty environment: nothing of this shell's (AWS credentials among it) reaches the server.
if ! env -i PATH=/usr/bin:/bin "$PG_BIN/pg_ctl" -D "$PITR_DATA_DIR" -l "$PWD/pitr-server.log" -w -t 86400 start; then
  tail -n 20 pitr-server.log >&2; exit 1
fi
until [ "$("$PG_BIN/psql" -h "$PWD" -p "$PITR_PORT" -U "$PITR_USER" -d postgres -XAtqc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null || true)" = t ]; do
  sleep 2
done
# Where recovery stopped: the last transaction replayed, or the first one it stopped before.
grep -E 'recovery stopping|last completed transaction|archive recovery complete' pitr-server.log`)}

### 5. Check, then clean up

The recovered server answers on the socket in this directory, port \`$PITR_PORT\`: check your data (for example
step 7's row counts, against a dump taken near the target), then point the application at it or take a dump of it.

${block('pitr5', RunbookVia.STANDARD, `
"$PG_BIN/psql" -h "$PWD" -p "$PITR_PORT" -U "$PITR_USER" -d postgres -XAtc 'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1'
rm -rf wal-restore wal-objects.tsv base-manifests.txt base-manifest.json base-latest.json candidate.json
# When you are done with it: env -i "$PG_BIN/pg_ctl" -D "$PITR_DATA_DIR" stop`)}`;
}
