#!/usr/bin/env bash
# Starts the local PostgreSQL 15 and MariaDB servers the tests, the drill and the benchmark use,
# makes sure the test login exists on each, and starts moto's server, the AWS emulator (S3 with versioning,
# Object Lock and conditional writes; Secrets Manager, CloudWatch, SNS, SQS). Idempotent. s3rver, the plain
# S3 stand-in, is started per test file.
#
#   PostgreSQL: 127.0.0.1:${PGPORT:-5432}, user restorable / restorable (superuser)
#   MariaDB:    127.0.0.1:${MYSQL_TCP_PORT:-3306}, user restorable / restorable (all privileges), binary log off
#   MariaDB with binary logging (binlog streaming): 127.0.0.1:${RESTORABLE_BINLOG_PORT:-3307}, user restorable /
#               restorable (all privileges); log_bin, ROW format, server_id 1, a data directory and socket of its own
#               (${RESTORABLE_BINLOG_DIR:-/var/lib/restorable-mariadb-binlog}); tests that restart, purge or reset a
#               server start throwaway ones instead (test/support/mariadb-binlog-server.ts)
#   moto:       http://127.0.0.1:${RESTORABLE_MOTO_PORT:-5055}, any credentials; tests keep apart by unique names
#   FerretDB:   mongodb://127.0.0.1:${RESTORABLE_MONGO_PORT:-27017}, a MongoDB-wire server on the PostgreSQL database
#               restorable_ferretdb; clients authenticate with PLAIN as restorable / restorable (the PostgreSQL login)
set -euo pipefail
cmd=${1:-start}
[[ $cmd == start ]] || { echo "usage: $0 start" >&2; exit 2; }

need() { command -v "$1" >/dev/null || { echo "services: '$1' not found: run 'sudo bash scripts/install-deps.sh' first" >&2; exit 1; }; }
need pg_ctlcluster; need mariadb
MOTO=${RESTORABLE_TOOLS:-/opt/restorable-tools}/aws/bin/moto_server
[[ -x $MOTO ]] || { echo "services: $MOTO not found: run 'bash scripts/install-deps.sh' first (it installs the pinned Python tools)" >&2; exit 1; }
MONGO_TOOLS=${RESTORABLE_TOOLS:-/opt/restorable-tools}/mongo
[[ -x $MONGO_TOOLS/ferretdb ]] || { echo "services: $MONGO_TOOLS/ferretdb not found: run 'bash scripts/install-deps.sh' first (it builds FerretDB and MongoDB's tools)" >&2; exit 1; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# PostgreSQL 15: the Debian cluster 15/main.
if ! pg_lsclusters -h | awk '$1=="15" && $2=="main"' | grep -q online; then
  as_root pg_ctlcluster 15 main start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}" && break; sleep 1; done
pg_isready -h 127.0.0.1 -p "${PGPORT:-5432}" >/dev/null || { echo "services: PostgreSQL did not start" >&2; exit 1; }
as_root su postgres -c "psql -q -v ON_ERROR_STOP=1 -d postgres" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'restorable') THEN
    CREATE ROLE restorable LOGIN SUPERUSER PASSWORD 'restorable';
  END IF;
END $$;
SQL

# MariaDB.
if ! mariadb-admin ping --silent >/dev/null 2>&1; then
  as_root service mariadb start >/dev/null
fi
for _ in $(seq 1 30); do mariadb-admin ping --silent >/dev/null 2>&1 && break; sleep 1; done
as_root mariadb -u root <<'SQL'
CREATE USER IF NOT EXISTS 'restorable'@'127.0.0.1' IDENTIFIED BY 'restorable';
CREATE USER IF NOT EXISTS 'restorable'@'localhost' IDENTIFIED BY 'restorable';
GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'localhost' WITH GRANT OPTION;
SQL
# MariaDB with binary logging: a second mariadbd of the same binaries, detached, with its own configuration (no
# /etc/mysql options reach it), data directory, socket and error log. Binlog files of 16 MiB, so that a test's writes
# rotate through several; kept a week.
binlog_port=${RESTORABLE_BINLOG_PORT:-3307}
binlog_dir=${RESTORABLE_BINLOG_DIR:-/var/lib/restorable-mariadb-binlog}
binlog_socket=$binlog_dir/run/mysqld.sock
# As root over the socket: over TCP a server without the test login yet refuses the host before any ping.
binlog_ping() { as_root mariadb-admin --no-defaults -u root --socket="$binlog_socket" --connect-timeout=2 ping >/dev/null 2>&1; }
if ! binlog_ping; then
  as_root mkdir -p "$binlog_dir/data" "$binlog_dir/run" "$binlog_dir/tmp"
  as_root chown mysql:mysql "$binlog_dir/data" "$binlog_dir/run" "$binlog_dir/tmp"
  as_root chmod 0750 "$binlog_dir/data"
  as_root tee "$binlog_dir/my.cnf" >/dev/null <<CNF
[mariadbd]
user = mysql
datadir = $binlog_dir/data
# A tmpdir of its own: a server starting removes every '#sql' temporary file in its tmpdir, other servers' included.
tmpdir = $binlog_dir/tmp
socket = $binlog_socket
pid-file = $binlog_dir/run/mysqld.pid
log-error = $binlog_dir/error.log
port = $binlog_port
bind-address = 127.0.0.1
skip-name-resolve
log_bin = binlog
binlog_format = ROW
binlog_row_image = FULL
server_id = 1
max_binlog_size = 16M
binlog_expire_logs_seconds = 604800
innodb_buffer_pool_size = 256M
innodb_log_file_size = 64M
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
CNF
  if [[ ! -d $binlog_dir/data/mysql ]]; then
    as_root mariadb-install-db --no-defaults --user=mysql --datadir="$binlog_dir/data" --auth-root-authentication-method=socket \
      --skip-test-db --innodb-log-file-size=64M --tmpdir="$binlog_dir/tmp" >"${TMPDIR:-/tmp}/restorable-binlog-install.log" 2>&1 \
      || { echo "services: mariadb-install-db failed for the binlog server: $(tail -5 "${TMPDIR:-/tmp}/restorable-binlog-install.log")" >&2; exit 1; }
  fi
  as_root touch "$binlog_dir/error.log"
  as_root chown mysql:mysql "$binlog_dir/error.log"
  as_root setsid nohup /usr/sbin/mariadbd --defaults-file="$binlog_dir/my.cnf" >/dev/null 2>&1 </dev/null &
  for _ in $(seq 1 60); do binlog_ping && break; sleep 0.5; done
  binlog_ping || { echo "services: the binlog MariaDB did not start on port $binlog_port; its log: $(as_root tail -5 "$binlog_dir/error.log")" >&2; exit 1; }
fi
as_root mariadb --no-defaults -u root --socket="$binlog_socket" <<'SQL'
CREATE USER IF NOT EXISTS 'restorable'@'127.0.0.1' IDENTIFIED BY 'restorable';
CREATE USER IF NOT EXISTS 'restorable'@'localhost' IDENTIFIED BY 'restorable';
GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'restorable'@'localhost' WITH GRANT OPTION;
SQL

# moto: one server for every test, detached so that it outlives this script.
moto_port=${RESTORABLE_MOTO_PORT:-5055}
# The state manager answers cheaply and changes nothing (data.json reads every object, and moves restores on).
moto_up() { curl -sf -o /dev/null "http://127.0.0.1:$moto_port/moto-api/state-manager/get-transition?model_name=s3::keyrestore"; }
if ! moto_up; then
  log=${TMPDIR:-/tmp}/restorable-moto-$moto_port.log
  setsid nohup "$MOTO" -H 127.0.0.1 -p "$moto_port" >"$log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do moto_up && break; sleep 0.2; done
  moto_up || { echo "services: moto's server did not start on port $moto_port; its log: $(tail -5 "$log")" >&2; exit 1; }
fi

# FerretDB: one server for every test, detached, on a PostgreSQL database of UTF8 and C collation (as FerretDB needs).
# The URL names no user: each client's PLAIN login is the PostgreSQL login FerretDB connects with.
mongo_port=${RESTORABLE_MONGO_PORT:-27017}
mongo_up() { (exec 3<>"/dev/tcp/127.0.0.1/$mongo_port") 2>/dev/null; }
if ! mongo_up; then
  psql -XAtq 'postgresql://restorable:restorable@127.0.0.1/postgres' -c "SELECT 1 FROM pg_database WHERE datname = 'restorable_ferretdb'" | grep -q 1 \
    || psql -Xq 'postgresql://restorable:restorable@127.0.0.1/postgres' \
      -c "CREATE DATABASE restorable_ferretdb ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
  log=${TMPDIR:-/tmp}/restorable-ferretdb-$mongo_port.log
  setsid nohup "$MONGO_TOOLS/ferretdb" "127.0.0.1:$mongo_port" "postgres://127.0.0.1:${PGPORT:-5432}/restorable_ferretdb" >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do mongo_up && break; sleep 0.2; done
  mongo_up || { echo "services: FerretDB did not start on port $mongo_port; its log: $(tail -5 "$log")" >&2; exit 1; }
fi

echo "services: PostgreSQL $(psql -XAtq 'postgresql://restorable:restorable@127.0.0.1/postgres' -c 'show server_version'), MariaDB $(MYSQL_PWD=restorable mariadb -h 127.0.0.1 -u restorable -N -e 'select version()') (binlog on port $binlog_port: $(MYSQL_PWD=restorable mariadb --no-defaults -h 127.0.0.1 -P "$binlog_port" -u restorable -N -e 'select @@log_bin_basename')), moto $("${MOTO%/*}/python" -c 'import moto; print(moto.__version__)') and FerretDB on port $mongo_port ready"
