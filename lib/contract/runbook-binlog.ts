/**
 * The point-in-time recovery section of a MariaDB source whose binlogs are streamed (see runbook.ts and binlog.ts):
 * steps binlog1 to binlog5, drilled by test/container/runbook-drill-binlog.test.ts. The newest dump with binlog
 * coordinates before the target is restored as step 6 restores one, then the streamed binlogs after its coordinates
 * are fetched, verified and replayed by the client, stopping at a position, never at a time.
 *
 * The binlogs and their indexes are written by the streamer, the least trusted writer of a source's objects: the
 * reader checks each object's SHA-256 against its index and its metadata, decompresses no more than the index
 * records, and reads the file's own events (mariadb-binlog, in UTC) to find where replay stops, refusing an index
 * that says otherwise.
 */
import { BINLOG_DIR, BINLOG_INDEX_SUFFIX, BINLOG_METADATA, BINLOG_STREAM_FILE } from './binlog';
import { MANIFEST_SUFFIX, STORED_SUFFIX } from './names';
import { FETCH_IDENTITY, RunbookPath, RunbookVia, block, decryptVerified, standardBlocks } from './runbook-blocks';
import { WAL_METADATA } from './wal';

/** The most a binlog object's recorded size may be before the standard tools refuse it unread (4 GiB, above MariaDB's largest max_binlog_size of 1 GiB and a last transaction past it). */
export const BINLOG_MAX_BYTES = 4 * 1024 * 1024 * 1024;

/** The standard-tool script of a binlog point-in-time recovery on one path: the scene (step 0), then steps binlog1 to binlog5. */
export function binlogScript(markdown: string, path: RunbookPath): string {
  return standardBlocks(markdown, path, /^(0|binlog\d)$/);
}

/** What the binlog section takes from the rest of the runbook: the dump's download, decryption and load, as steps 3, 4 and 6 run them. */
export interface BinlogSectionSteps {
  readonly agentSelection: string;
  readonly download: string;
  readonly decrypt: string;
  readonly restore: string;
  /** The client as the restore runs the backup's SQL (in its sandbox), without the database. */
  readonly load: string;
  /** The files the dump's restore leaves behind. */
  readonly leftovers: string;
}

/**
 * The section. In the shell, `$TARGET_STAMP` is the target second as mariadb-binlog prints times (`YYMMDD HH:MM:SS`,
 * UTC), which compare as text; every event group with a time at or before it is replayed, none after the first one past it.
 */
export function binlogSection(steps: BinlogSectionSteps): string {
  return `## Point-in-time recovery from the binlogs

This source's binlogs are streamed: besides its dumps, its database can be recovered to any second from its oldest dump
with binlog coordinates to its newest streamed binlog, within one stream (a stream begins anew when the server purged
a file the streamer had not read, its binlogs were reset, or it is another server; its \`stream.json\` says why). You
need step 0's block above (\`TARGET_*\` name the new database and the server it goes to), \`mariadb-binlog\` and
\`mariadb\` (MariaDB's client tools: MySQL's read other coordinates), and \`BINLOG_TARGET_TIME\`. Binlog times are whole
seconds, when each statement started: recovery to a time replays, in binlog order, every transaction up to the first
one whose time is after that second (\`2026-11-26T03:00:00.900Z\` recovers the same as \`2026-11-26T03:00:00Z\`).
The binlogs and their indexes are untrusted input, written by the streamer: each file's SHA-256 is checked, and where
replay stops is read from the file's own events (an index that disagrees is refused). Their events run in the client's
sandbox as \`$TARGET_USER\`, filtered to the dumped database: they need the \`BINLOG REPLAY\` privilege beside the rights
on \`$TARGET_DATABASE\`; give them no more.

**A streamer that may have been compromised.** Step binlog1, the agent's command, refuses before anything is replayed
what a ROW-format replay does not need: a query whose text holds a \`BINLOG\` statement (which applies rows without
table privileges), a name or string holding a line break (which would end a comment line of mariadb-binlog's output
and become SQL), an event type outside ROW replay, a start position inside a transaction, and an account with rights
beyond \`$TARGET_DATABASE\`. The standard-tool steps check every file's SHA-256 and where replay stops, but none of
that: when the streamer, or the server it read, may have been in an attacker's hands, use binlog1, or replay with the
standard tools into a throwaway server only.

${block('binlog1', RunbookVia.RESTORABLE, `# Picks the newest dump with binlog coordinates before the target, restores it, then fetches, verifies and replays
# the binlogs after it, stopping before the first transaction after the target; reports the last one applied:
restorable restore ${steps.agentSelection} --to "$BINLOG_TARGET_TIME" --identity-secret-id "$IDENTITY_SECRET" \\
  --host "$TARGET_HOST" --port "$TARGET_PORT" --user "$TARGET_USER" --database "$TARGET_DATABASE" --json > binlog-result.json`)}

### 1. Choose the dump

The newest dump that started at or before the target and records where it sits in the binlog (\`binlog\` in its
manifest: a dump taken with \`--binlog-coordinates\`, as the schedules of such a source take them).

${block('binlog1', RunbookVia.STANDARD, `
# BINLOG_TARGET_TIME: an ISO 8601 time in UTC (such as 2026-11-26T03:00:00Z), or latest for everything streamed.
: "\${BINLOG_TARGET_TIME:?set BINLOG_TARGET_TIME}"
NOW_EPOCH=$(date -u +%s)
if [ "$BINLOG_TARGET_TIME" = latest ]; then TARGET_EPOCH=$NOW_EPOCH; else TARGET_EPOCH=$(date -u -d "$BINLOG_TARGET_TIME" +%s); fi
if [ "$TARGET_EPOCH" -gt "$NOW_EPOCH" ]; then echo "$BINLOG_TARGET_TIME is in the future" >&2; exit 1; fi
TARGET_STAMP=$(date -u -d "@$TARGET_EPOCH" '+%y%m%d %H:%M:%S')
# Dumps live under their year ({source}/YYYY/MM/DD/); keys sort by the time each started.
aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "\${PREFIX}$SOURCE/" --delimiter / --query 'CommonPrefixes[].Prefix' --output text |
  tr '\\t' '\\n' | grep -E '/[0-9]{4}/$' | sort -r > dump-years.txt || true
rm -f manifest.json
while read -r year; do
  aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$year" --query "Contents[?ends_with(Key, '${MANIFEST_SUFFIX}')].Key" \\
    --output text | tr '\\t' '\\n' | sort -r > dump-manifests.txt
  while read -r m; do
    if [ -z "$m" ] || [ "$m" = None ]; then continue; fi
    aws s3 cp --quiet "s3://$BUCKET/$m" candidate.json
    if [ "$(date -u -d "$(jq -r .startedAt candidate.json)" +%s)" -le "$TARGET_EPOCH" ] && jq -e .binlog candidate.json > /dev/null; then
      mv candidate.json manifest.json; break 2
    fi
  done < dump-manifests.txt
done < dump-years.txt
if [ ! -f manifest.json ]; then echo "no dump of $SOURCE with binlog coordinates started at or before $BINLOG_TARGET_TIME" >&2; exit 1; fi
KEY=$(jq -r .key manifest.json)
BINLOG_FILE=$(jq -r .binlog.file manifest.json)
BINLOG_POSITION=$(jq -r .binlog.position manifest.json)
BINLOG_SERVER_ID=$(jq -r .binlog.serverId manifest.json)
if [[ ! "$BINLOG_FILE" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}[.][0-9]{6,10}$ ]] || [[ ! "$BINLOG_POSITION" =~ ^[0-9]{1,12}$ ]] ||
  [[ ! "$BINLOG_SERVER_ID" =~ ^[0-9]{1,10}$ ]]; then
  echo "$KEY: its manifest's binlog coordinates are not a file, a position and a server id" >&2; exit 1
fi
jq '{key, startedAt, database, binlog}' manifest.json`)}

### 2. Restore the dump

As steps 2 to 4 and 6 do, into \`$TARGET_DATABASE\`, which must not exist yet.

${block('binlog2', RunbookVia.STANDARD, `
${FETCH_IDENTITY}
${steps.download.trim()}
${steps.decrypt.trim()}
${steps.restore.trim()}
rm -f backup.age globals.age ${steps.leftovers}`)}

### 3. Find the binlogs after it

The newest stream that holds the dump's binlog file, created (by the same server) before the dump started; from that
file on, each file whole, or for the last one the longest upload of it while it grew (\`….partial.{bytes}\`), with no
file missing between. For a time, files are read until the one whose index marks a transaction after the target.

${block('binlog3', RunbookVia.STANDARD, `
BINLOG_PREFIX="\${PREFIX}$SOURCE/${BINLOG_DIR}/"
DUMP_EPOCH=$(date -u -d "$(jq -r .startedAt manifest.json)" +%s)
aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$BINLOG_PREFIX" --delimiter / --query 'CommonPrefixes[].Prefix' --output text |
  tr '\\t' '\\n' | grep -E '/[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}-[0-9]{2}-[0-9]{2}Z/$' | sort -r > binlog-streams.txt || true
STREAM=
while read -r stream; do
  # Each file of the stream once: "sequence<TAB>file<TAB>stored name", whole when it is there, else its longest partial.
  aws s3api list-objects-v2 --bucket "$BUCKET" --prefix "$stream" --query 'Contents[].Key' --output text | tr '\\t' '\\n' |
    awk -v p="$stream" '{ n = "" } substr($0, 1, length(p)) == p { n = substr($0, length(p) + 1) } n ~ /[.]index[.]json$/ {
      n = substr(n, 1, length(n) - ${BINLOG_INDEX_SUFFIX.length}); f = n; partial = 0
      if (match(n, /[.]partial[.][0-9A-F]+$/)) { f = substr(n, 1, RSTART - 1); partial = 1 }
      if (!(f in best) || (!partial && kind[f]) || (partial && kind[f] && n > best[f])) { best[f] = n; kind[f] = partial }
    } END { for (f in best) { s = f; sub(/^.*[.]/, "", s); print (s + 0) "\\t" f "\\t" best[f] } }' |
    grep -E $'^[0-9]+\\t[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}[.][0-9]{6,10}\\t' | sort -n > stream-files.tsv || true
  first=$(awk -F '\\t' -v f="$BINLOG_FILE" '$2 == f { print $3 }' stream-files.tsv)
  if [ -z "$first" ]; then continue; fi
  rm -rf binlog-indexes && mkdir binlog-indexes
  aws s3 cp --quiet "s3://$BUCKET/$stream$first${BINLOG_INDEX_SUFFIX}" "binlog-indexes/$first.json"
  index=binlog-indexes/$first.json
  if [ "$(jq -r .serverId "$index")" = "$BINLOG_SERVER_ID" ] && [ "$(date -u -d "$(jq -r .created "$index")" +%s)" -le "$DUMP_EPOCH" ]; then
    STREAM=$stream; break
  fi
done < binlog-streams.txt
if [ -z "$STREAM" ]; then
  echo "no binlog stream of $SOURCE holds $BINLOG_FILE of server $BINLOG_SERVER_ID as it was when the dump started: restore the dump alone (step 6)" >&2; exit 1
fi
aws s3 cp --quiet "s3://$BUCKET/\${STREAM}${BINLOG_STREAM_FILE}" - | jq '{stream, startedAt, reason, detail}'
# The plan, in replay order: stored name, start, stop from the index (- for none), closed, size, end of its last whole transaction.
NEXT=$((10#\${BINLOG_FILE##*.}))
START=$BINLOG_POSITION
: > binlog-plan.tsv
while IFS=$'\\t' read -r seq file name; do
  if [ "$seq" -lt "$NEXT" ]; then continue; fi
  if [ "$seq" -gt "$NEXT" ]; then
    echo "a gap at $file: the stream holds no file numbered $NEXT before it; restore the dump taken after it, or --to a time before it" >&2; exit 1
  fi
  if [[ "$(tail -n 1 binlog-plan.tsv | cut -f 1)" == *.partial.* ]]; then
    echo "a gap before $file: only the first part of the file before it is stored; restore the dump taken after it, or --to a time before it" >&2; exit 1
  fi
  index=binlog-indexes/$name.json
  if [ ! -f "$index" ]; then aws s3 cp --quiet "s3://$BUCKET/$STREAM$name${BINLOG_INDEX_SUFFIX}" "$index"; fi
  if [ "$(jq -r .file "$index")" != "$file" ] || [ "$(jq -r .key "$index")" != "$STREAM$name${STORED_SUFFIX}" ]; then
    echo "$STREAM$name${BINLOG_INDEX_SUFFIX} indexes another object ($(jq -r .key "$index")): refused" >&2; exit 1
  fi
  STOP=-
  if [ "$BINLOG_TARGET_TIME" != latest ]; then
    STOP=$(jq -r --argjson t "$TARGET_EPOCH" --argjson s "$START" '[.marks[] | select(.[0] > $t and .[1] >= $s)][0][1] // "-"' "$index")
  fi
  printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$name" "$START" "$STOP" "$(jq -r .closed "$index")" "$(jq -r .size "$index")" \\
    "$(jq -r .groupsEnd "$index")" >> binlog-plan.tsv
  if [ "$STOP" != - ]; then break; fi
  START=4
  NEXT=$((seq + 1))
done < stream-files.tsv
if [ ! -s binlog-plan.tsv ]; then echo "the stream holds nothing from $BINLOG_FILE on" >&2; exit 1; fi
cut -f 1,3,4 binlog-plan.tsv`)}

### 4. Fetch and verify them

Each object checked against the SHA-256 its index and its metadata record (\`x-amz-meta-${WAL_METADATA.plaintextSha256}\`),
decompressed to no more than the size its index records (at most 4 GiB), and read by mariadb-binlog, in UTC, to find
where replay stops: before the first transaction after the target second, or, for \`latest\`, at the end of the last whole
transaction stored. The index must say the same.

${block('binlog4', RunbookVia.STANDARD, `
mkdir -p binlog-restore && chmod 700 binlog-restore
BINLOG_STOP=
REACHED=
LAST_EVENT=
BINLOG_FILES=()
while IFS=$'\\t' read -r name start stop closed size groups_end; do
  key="$STREAM$name${STORED_SUFFIX}"
  file=\${name%%.partial.*}
  aws s3api get-object --bucket "$BUCKET" --key "$key" binlog-object.age > binlog-object.json
  expected=$(jq -r .sha256 "binlog-indexes/$name.json")
  if [[ ! "$expected" =~ ^[0-9a-f]{64}$ ]] || [ "$(jq -r '.Metadata["${WAL_METADATA.plaintextSha256}"] // empty' binlog-object.json)" != "$expected" ] ||
    [ "$(jq -r '.Metadata["${BINLOG_METADATA.serverId}"] // empty' binlog-object.json)" != "$BINLOG_SERVER_ID" ]; then
    echo "$key: its metadata and its index do not record the same SHA-256 and server: refused" >&2; exit 1
  fi
  if [[ ! "$size" =~ ^[0-9]{1,10}$ ]] || [ "$size" -gt ${BINLOG_MAX_BYTES} ]; then echo "$key: its index records no size of at most 4 GiB ('$size'): refused" >&2; exit 1; fi
${decryptVerified({ object: 'binlog-object.age', dir: 'binlog-restore', nameVariable: 'file', recorded: 'index', what: 'streamed' })}
  rm "binlog-restore/$file.sha256"
  # The file's own events: where the first transaction after the target starts (- for none), where the events end, whether
  # the index's end of its last whole transaction is where an event starts with at most one transaction (unfinished) from
  # there, and the last transaction before the stop.
  read -r found end ends_ok last_at last_gtid last_time < <(TZ=UTC mariadb-binlog --verify-binlog-checksum --start-position="$start" "binlog-restore/$file" |
    awk -v target="$([ "$BINLOG_TARGET_TIME" = latest ] || echo "$TARGET_STAMP")" -v start="$start" -v groups_end="$groups_end" '
      /^# at [0-9]+$/ { at = $3 + 0; next }
      /^#[0-9][0-9][0-9][0-9][0-9][0-9] +[0-9:]+ server id / {
        for (i = 1; i < NF; i++) if ($i == "end_log_pos") end = $(i + 1) + 0
        if (at == groups_end) boundary = 1
        # Hours before ten are printed space-padded (#261203  6:05:27): padded with a zero here, as TARGET_STAMP is.
        clock = (length($2) == 7 ? "0" : "") $2
        if (at >= start && match($0, /\\tGTID [0-9]+-[0-9]+-[0-9]+/)) {
          stamp = substr($1, 2) " " clock
          if (at >= groups_end) { after++; if (at != groups_end) after = 2 }
          if (found == "" && target != "" && stamp > target) found = at
          if (found == "") {
            last_at = at; last_gtid = substr($0, RSTART + 6, RLENGTH - 6)
            last_time = "20" substr($1, 2, 2) "-" substr($1, 4, 2) "-" substr($1, 6, 2) "T" clock "Z"
          }
        }
      }
      END {
        if (end == groups_end) boundary = 1
        print (found == "" ? "-" : found), end + 0, (boundary && after < 2) ? 1 : 0, (last_at == "" ? "-" : last_at),
          (last_gtid == "" ? "-" : last_gtid), (last_time == "" ? "-" : last_time)
      }')
  if [ "$found" != "$stop" ]; then
    echo "$key: its index says replay stops at $stop, its events at $found: refused (the index was not built from this file)" >&2; exit 1
  fi
  if [ "$end" != "$size" ] || [ "$ends_ok" != 1 ]; then
    echo "$key: its events end at $end and its index records $size bytes, its last whole transaction ending at $groups_end: refused" >&2; exit 1
  fi
  if [ "$last_gtid" != - ]; then LAST_EVENT="$file $last_at $last_gtid $last_time"; fi
  BINLOG_FILES+=("binlog-restore/$file")
  # Only the last file's stop counts: before the first transaction after the target, or the end of its last whole
  # one when the file does not end with a rotate (a partial, or the file the server stopped in).
  LAST_FILE=$file; BINLOG_STOP=
  if [ "$stop" != - ]; then BINLOG_STOP=$stop; REACHED=yes; elif [ "$closed" != true ]; then BINLOG_STOP=$groups_end; fi
done < binlog-plan.tsv
rm -rf binlog-object.age binlog-object.json binlog-indexes identity.txt
echo "\${#BINLOG_FILES[@]} binlog files fetched and verified"
if [ "$BINLOG_TARGET_TIME" != latest ] && [ -z "$REACHED" ]; then
  echo "note: the stored binlogs end before $BINLOG_TARGET_TIME (their last transaction: \${LAST_EVENT:-none}); replay ends there" >&2
fi`)}

### 5. Replay them

One invocation over every file, from the dump's position, in UTC, only the dumped database's events (renamed to
\`$TARGET_DATABASE\`), into the client's sandbox, stopping at the position step 4 found.

${block('binlog5', RunbookVia.STANDARD, `
SOURCE_DATABASE=$(jq -r .database manifest.json)
REWRITE=()
if [ "$SOURCE_DATABASE" != "$TARGET_DATABASE" ]; then REWRITE=(--rewrite-db="$SOURCE_DATABASE->$TARGET_DATABASE"); fi
TZ=UTC mariadb-binlog --start-position="$BINLOG_POSITION" \${BINLOG_STOP:+--stop-position="$BINLOG_STOP"} --database="$SOURCE_DATABASE" "\${REWRITE[@]}" \\
  "\${BINLOG_FILES[@]}" | ${steps.load} --binary-mode "$TARGET_DATABASE"
# The last transaction applied: file, start position, GTID, and time (UTC).
echo "replayed \${#BINLOG_FILES[@]} binlog files up to $LAST_FILE \${BINLOG_STOP:-its end}; last transaction: \${LAST_EVENT:-none}"
rm -rf binlog-restore binlog-plan.tsv binlog-streams.txt stream-files.tsv dump-years.txt dump-manifests.txt candidate.json`)}`;
}
