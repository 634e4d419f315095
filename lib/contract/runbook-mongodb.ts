/**
 * The runbook's words for a MongoDB source (see runbook.ts): mongorestore loads the decrypted archive into the target
 * database, and the document counts it reports are compared with the manifest's.
 *
 * The backup is untrusted input: only the backed-up database's own collections are taken (--nsInclude), system
 * collections left out (--nsExclude: system.js holds code), never its users and roles (no --restoreDbUsersAndRoles),
 * never its UUIDs (no --preserveUUID), and nothing dropped unless the reader chose to replace (TARGET_REPLACE=yes).
 * The password reaches mongorestore in its own 0600 --config file, never its command line.
 */
import type { EngineWords } from './runbook';

/** What mongorestore logs once a collection is loaded, up to the count: `finished restoring db.coll (N documents, F failures)`. */
const FINISHED = 'finished restoring ';

/** A database name as the steps put it into namespace patterns: no wildcard, dot or quote can widen them. */
const checkedName = (variable: string, what: string) =>
  `case "$${variable}" in ''|*[!A-Za-z0-9_-]*) echo "${what} '$${variable}' is not letters, digits, _ and - alone: restore it with restorable" >&2; exit 1;; esac`;

/** mongorestore's connection flags, the password in mongo.yaml. */
const CONNECT = '--host "$TARGET_HOST" --port "$TARGET_PORT" --username "$TARGET_USER" --authenticationDatabase "$TARGET_AUTH_SOURCE" \\\n' +
  '  ${TARGET_AUTH_MECHANISM:+--authenticationMechanism "$TARGET_AUTH_MECHANISM"} ${TARGET_TLS_CA_FILE:+--ssl --sslCAFile "$TARGET_TLS_CA_FILE"} --config mongo.yaml';

export const MONGODB_WORDS: EngineWords = {
  name: 'MongoDB', dumpFile: 'dump.archive', globalsFile: 'globals.json', client: 'mongorestore', passwordVariable: 'MONGODB_PASSWORD', defaultPort: 27017,
  variables: `
# TARGET_AUTH_SOURCE: the database TARGET_USER is defined in (default admin; LDAP and FerretDB: $external).
# TARGET_AUTH_MECHANISM: SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN (default: negotiated). TARGET_TLS_CA_FILE: the CAs of a
# TLS server (Amazon DocumentDB: global-bundle.pem). TARGET_REPLACE=yes drops each collection the backup holds before
# loading it (mongorestore --drop): only to replace a database on purpose; otherwise TARGET_DATABASE must not exist.`,
  required: ' "${TARGET_AUTH_SOURCE:=admin}" "${MONGODB_PASSWORD:?set MONGODB_PASSWORD}"',
  agentRestore: `
# The backup is untrusted input: the agent loads only the backed-up database's own collections, renamed into
# $TARGET_DATABASE, never its system collections, users, roles or UUIDs, and checks the whole archive first. Add
# --clean only to replace a database on purpose (mongorestore --drop). The password is read from MONGODB_PASSWORD.`,
  agentLoad: ' --auth-source "$TARGET_AUTH_SOURCE" ${TARGET_AUTH_MECHANISM:+--auth-mechanism "$TARGET_AUTH_MECHANISM"} ' +
    '${TARGET_TLS_CA_FILE:+--tls-ca-file "$TARGET_TLS_CA_FILE"} ${TARGET_REPLACE:+--clean}',
  restore: `
# The backup is untrusted input: only the backed-up database's own collections are loaded, renamed into
# $TARGET_DATABASE; never its system collections (system.js holds code), users, roles or collection UUIDs. The users
# and roles companion is shown for you to recreate by hand (createUser, createRole) what you recognise, never loaded.
# The password goes to mongorestore in a 0600 --config file (the scene's umask), never on its command line.
SOURCE_DATABASE=$(jq -r .database manifest.json)
${checkedName('SOURCE_DATABASE', 'the manifest\'s database')}
${checkedName('TARGET_DATABASE', 'TARGET_DATABASE')}
if [ -f globals.json ]; then echo "users and roles of the backup, to recreate by hand (not loaded):"; jq . globals.json; fi
printf '%s' "$MONGODB_PASSWORD" | jq -Rsr '"password: " + tojson' > mongo.yaml
# mongorestore runs with nothing of this shell's environment (no AWS credentials) and an empty HOME. It checks a
# collection's CRC only after loading its documents: a failure below means the target holds part of an archive that
# was altered, so drop it rather than trust it. Its log may hold names the archive chose: shown without control
# characters.
if env -i PATH="$PATH" HOME="$(mktemp -d)" TZ=UTC LANG=C mongorestore ${CONNECT} \\
  --archive=dump.archive --nsInclude "$SOURCE_DATABASE.*" --nsExclude "$SOURCE_DATABASE.system.*" \\
  --nsFrom "$SOURCE_DATABASE.*" --nsTo "$TARGET_DATABASE.*" --stopOnError \${TARGET_REPLACE:+--drop} 2> mongorestore.log
then RESTORED=yes; else RESTORED=no; fi
rm -f mongo.yaml
if [ "$RESTORED" != yes ]; then
  LC_ALL=C tr -d '\\000-\\010\\013-\\037\\177' < mongorestore.log >&2
  echo "mongorestore failed: see its log above; drop $TARGET_DATABASE rather than trust what it holds" >&2; exit 1
fi
# The collections mongorestore loaded must be the manifest's, no more: an archive that hides a collection from its own
# listing is caught here, after the load (the agent's restore reads the whole archive first and refuses it before).
loaded=$(grep -c -F "${FINISHED}$TARGET_DATABASE." mongorestore.log || true)
if [ "$loaded" != "$(jq '.tables | length' manifest.json)" ]; then
  echo "mongorestore loaded $loaded collections, the manifest lists $(jq '.tables | length' manifest.json)" >&2; exit 1
fi`,
  // The count mongorestore logged for the collection, exact names only (index, not a pattern) and only with no failures.
  countRows: 'NS="$TARGET_DATABASE.$table" awk -F \'\\t\' \'BEGIN { p = "' + FINISHED + '" ENVIRON["NS"] " (" } ' +
    'substr($2, 1, length(p)) == p && NF == 2 { r = substr($2, length(p) + 1); ' +
    'if (r ~ /^[0-9]+ documents, 0 failures\\)$/) { split(r, w, " "); n = w[1] } else n = "failed: " r } END { print n }\' mongorestore.log',
  leftovers: 'globals.json mongo.yaml mongorestore.log',
};
