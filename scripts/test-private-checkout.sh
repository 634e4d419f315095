#!/usr/bin/env bash
# Proves that the tests run from a checkout that other OS users cannot enter (a clone under a 0700
# directory, run as root): clones this checkout there and runs the suites that start a server as another
# user, with a fresh temporary directory so that nothing prepared by an earlier run is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "test-private-checkout: run as root: only root runs servers as the postgres user" >&2; exit 1; }
private=$(mktemp -d "${HOME:-/root}/restorable-private.XXXXXX") # mode 0700
scratch=$(mktemp -d /tmp/restorable-private-tmp.XXXXXX)
trap 'rm -rf "$private" "$scratch"' EXIT
chmod 0700 "$private"
chmod 0755 "$scratch"
git clone -q --no-hardlinks . "$private/restorable"
cd "$private/restorable"
if runuser -u postgres -- test -r "$PWD/package.json"; then
  echo "test-private-checkout: the postgres user can read $private: this proves nothing" >&2; exit 1
fi
mapfile -t suites < <(grep -rl --include='*.test.ts' 'startEmbeddedPostgres' test)
((${#suites[@]})) || { echo "test-private-checkout: no suite starts the embedded PostgreSQL" >&2; exit 1; }
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
npm run --silent bundle
TMPDIR=$scratch npx jest --ci "${suites[@]}"
