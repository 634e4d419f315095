#!/usr/bin/env bash
# The MongoDB-wire tools the tests use, built with Go from pinned modules into a directory outside the checkout
# (no MongoDB server or Database Tools package is packaged for Debian). Idempotent: a build whose module files match
# is kept, so a second run costs nothing.
#
#   $RESTORABLE_TOOLS/mongo/ferretdb:     FerretDB v1.24.2 (a MongoDB-wire server on PostgreSQL), test/support/ferretdb
#   $RESTORABLE_TOOLS/mongo/mongodump,
#   $RESTORABLE_TOOLS/mongo/mongorestore: MongoDB Database Tools 100.10.0, test/support/mongo-tools (the agent
#                                          image installs the same version's package)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${RESTORABLE_TOOLS:-/opt/restorable-tools}
out=$TOOLS/mongo
DATABASE_TOOLS_VERSION=100.10.0
command -v go >/dev/null || { echo "mongo-tools: go not found: install Go 1.24 or later (FerretDB v1.24 needs it)" >&2; exit 1; }
stamp=$( (cat "$root"/test/support/ferretdb/{go.mod,go.sum,main.go} "$root"/test/support/mongo-tools/{go.mod,go.sum,tools.go}; go version) | sha256sum | cut -c1-64)
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  echo "mongo-tools: FerretDB, mongodump and mongorestore $DATABASE_TOOLS_VERSION in $out"
  exit 0
fi
mkdir -p "$out"
rm -f "$out/.stamp"
build() { # DIR OUTPUT [PACKAGE]: a failed download names the module proxy's own words
  local dir=$1 output=$2 package=${3:-.} log
  log=$(mktemp)
  if ! (cd "$root/test/support/$dir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-X main.VersionStr=$DATABASE_TOOLS_VERSION" -o "$out/$output.new" "$package") >"$log" 2>&1; then
    echo "mongo-tools: building $output from test/support/$dir failed:" >&2
    tail -20 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  mv "$out/$output.new" "$out/$output"
}
build ferretdb ferretdb
build mongo-tools mongodump github.com/mongodb/mongo-tools/mongodump/main
build mongo-tools mongorestore github.com/mongodb/mongo-tools/mongorestore/main
echo "$stamp" > "$out/.stamp"
echo "mongo-tools: built FerretDB, mongodump and mongorestore $("$out/mongodump" --version | awk 'NR==1{print $3}') into $out"
