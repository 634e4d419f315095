#!/usr/bin/env bash
# The MongoDB-wire tools the tests use, built with Go from pinned modules into a directory outside the checkout
# (no MongoDB server or Database Tools package is packaged for Debian). Idempotent: a build whose module files match
# is kept, so a second run costs nothing.
#
#   $RESTORABLE_TOOLS/mongo/ferretdb:     FerretDB v1.24.2 (a MongoDB-wire server on PostgreSQL), test/support/ferretdb,
#                                          with one change: createIndexes ignores an index's "ns" option, as MongoDB
#                                          does (mongorestore sets it on every index; FerretDB v1 refuses it as unknown)
#   $RESTORABLE_TOOLS/mongo/mongodump,
#   $RESTORABLE_TOOLS/mongo/mongorestore: MongoDB Database Tools 100.10.0, test/support/mongo-tools (the agent
#                                          image installs the same version's package)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${RESTORABLE_TOOLS:-/opt/restorable-tools}
out=$TOOLS/mongo
DATABASE_TOOLS_VERSION=100.10.0
command -v go >/dev/null || { echo "mongo-tools: go not found: install Go 1.24 or later (FerretDB v1.24 needs it)" >&2; exit 1; }
stamp=$( (cat "$0" "$root"/test/support/ferretdb/{go.mod,go.sum,main.go} "$root"/test/support/mongo-tools/{go.mod,go.sum,tools.go}; go version) | sha256sum | cut -c1-64)
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  echo "mongo-tools: FerretDB, mongodump and mongorestore $DATABASE_TOOLS_VERSION in $out"
  exit 0
fi
mkdir -p "$out"
rm -f "$out/.stamp"
build() { # MODULE_DIR OUTPUT [PACKAGE]: a failed download names the module proxy's own words
  local dir=$1 output=$2 package=${3:-.} log
  log=$(mktemp)
  if ! (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-X main.VersionStr=$DATABASE_TOOLS_VERSION" -o "$out/$output.new" "$package") >"$log" 2>&1; then
    echo "mongo-tools: building $output failed:" >&2
    tail -20 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  mv "$out/$output.new" "$out/$output"
}
# FerretDB from a copy of its module with the one change above, through a replace directive in a copy of our main's
# module (the module cache is read-only, and go build's -overlay refuses files in it).
ferret_src=$(mktemp -d)
trap 'chmod -R u+w "$ferret_src"; rm -rf "$ferret_src"' EXIT
(cd "$root/test/support/ferretdb" && go mod download -json github.com/FerretDB/FerretDB) >"$ferret_src/module.json" \
  || { echo "mongo-tools: downloading github.com/FerretDB/FerretDB failed: $(tail -5 "$ferret_src/module.json")" >&2; exit 1; }
cp -r "$(jq -r .Dir "$ferret_src/module.json")" "$ferret_src/module"
chmod -R u+w "$ferret_src/module"
indexes=$ferret_src/module/internal/handler/msg_createindexes.go
grep -qP '^\t\tcase "background":$' "$indexes" \
  || { echo "mongo-tools: $indexes no longer has the line this script changes: check the FerretDB version" >&2; exit 1; }
sed -i 's/^\t\tcase "background":$/\t\tcase "background", "ns":/' "$indexes"
cp "$root"/test/support/ferretdb/{go.mod,go.sum,main.go} "$ferret_src/"
(cd "$ferret_src" && go mod edit -replace "github.com/FerretDB/FerretDB=$ferret_src/module")
build "$ferret_src" ferretdb
build "$root/test/support/mongo-tools" mongodump github.com/mongodb/mongo-tools/mongodump/main
build "$root/test/support/mongo-tools" mongorestore github.com/mongodb/mongo-tools/mongorestore/main
echo "$stamp" > "$out/.stamp"
echo "mongo-tools: built FerretDB, mongodump and mongorestore $("$out/mongodump" --version | awk 'NR==1{print $3}') into $out"
