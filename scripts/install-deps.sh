#!/usr/bin/env bash
# Installs the system tools that the tests, the drill and the benchmark use (Debian, as root), then the
# pinned Python tools (scripts/python-tools.sh) and the MongoDB-wire tools built with Go (scripts/mongo-tools.sh).
set -euo pipefail
packages=(postgresql mariadb-server mariadb-client zstd age awscli jq pigz openssl procps curl sysbench)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing Debian packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: ${packages[*]} present"
bash "$(dirname "$0")/python-tools.sh"
bash "$(dirname "$0")/mongo-tools.sh"
