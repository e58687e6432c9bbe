#!/usr/bin/env bash
# Brings up MariaDB and PostgreSQL for the demo and the tests, creates their databases
# and users, and writes .aioetl/local.env with the variables aioetl reads.
#   1. servers already answering on 127.0.0.1:3306 and :5432 are used as they are;
#   2. else, where a Docker engine answers: docker compose up -d --wait;
#   3. else Debian's packages, installed if missing (as root), started by hand.
# The administrator aioetl_admin (all privileges: it writes the demo clinic and sets up
# tests) exists on localhost and 127.0.0.1 only, with a password generated here on the
# first run and kept in .aioetl/local.env (readable by its owner only); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=.aioetl/local.env

MYSQL_PORT=3306
REPLICA_PORT=3306
PG_PORT=5432
mode=local

say() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

answers() { # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for() { # what port seconds
  local i
  for ((i = 0; i < $3; i++)); do
    answers 127.0.0.1 "$2" && return 0
    sleep 1
  done
  die "$1 did not answer on 127.0.0.1:$2 within $3 s"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

apt_install() {
  command -v apt-get >/dev/null || die "MariaDB/PostgreSQL are not installed and this is not \
a Debian-like system: install MariaDB 10.6+ and PostgreSQL 13+, or a Docker engine"
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_mariadb() {
  answers 127.0.0.1 $MYSQL_PORT && return 0
  if [ ! -x /usr/sbin/mariadbd ]; then apt_install mariadb-server mariadb-client; fi
  # The TLS tests make a throwaway CA with the openssl command line.
  if ! command -v openssl >/dev/null; then apt_install openssl; fi
  # The time zone test starts a throwaway MariaDB in America/Chicago (the system's zones).
  if [ ! -e /usr/share/zoneinfo/America/Chicago ]; then apt_install tzdata; fi
  say "starting MariaDB"
  as_root install -d -o mysql -g mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for MariaDB $MYSQL_PORT 60
}

start_postgres() {
  answers 127.0.0.1 $PG_PORT && return 0
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -z "$(ls /etc/postgresql/"$version" 2>/dev/null)" ]; then
    as_root pg_createcluster "$version" main >/dev/null
  fi
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL $PG_PORT 60
}

mysql_admin() { # runs SQL from stdin as an administrator of the local server
  if [ "$mode" = docker ]; then
    docker compose exec -T "$1" mariadb -uroot -paioetl_root_local
  elif mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    as_root mariadb -uroot
  else
    mariadb -uroot -h127.0.0.1 -P"$2"
  fi
}

psql_admin() {
  export PGOPTIONS="-c client_min_messages=warning"
  if [ "$mode" = docker ]; then
    docker compose exec -T analytics psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres
  elif psql -w -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    psql -w -h 127.0.0.1 -p $PG_PORT -v ON_ERROR_STOP=1 -q -U postgres -d postgres
  else
    as_root runuser -u postgres -- psql -p $PG_PORT -v ON_ERROR_STOP=1 -q -d postgres
  fi
}

if answers 127.0.0.1 $MYSQL_PORT && answers 127.0.0.1 $PG_PORT; then
  say "MariaDB and PostgreSQL already answer on 127.0.0.1"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  mode=docker
  REPLICA_PORT=3307
  say "starting the compose services"
  docker compose up -d --wait
else
  start_mariadb
  start_postgres
fi

# The administrator's password: the one local.env already holds (the servers keep it),
# else a new random one.
admin_password() {
  local kept=""
  if [ -f "$ENV_FILE" ]; then
    kept=$(sed -n 's/^export OPENDENTAL_SOURCE_ADMIN_PASSWORD="\${OPENDENTAL_SOURCE_ADMIN_PASSWORD:-\([0-9A-Za-z_]*\)}"$/\1/p' "$ENV_FILE")
  fi
  if [ -n "$kept" ]; then printf '%s' "$kept"; else od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; fi
}

# Users on the local servers: '127.0.0.1' and 'localhost'; under Docker '%' instead of
# '127.0.0.1' (logins come from Docker's bridge; the ports are published on 127.0.0.1).
users_sql() { # host-for-127.0.0.1
  sed "s/'127\.0\.0\.1'/'$1'/g" .ci/sql/mysql-init.sql
  local host
  for host in localhost "$1"; do
    cat <<SQL
CREATE USER IF NOT EXISTS 'aioetl_admin'@'$host' IDENTIFIED BY '$ADMIN_PASSWORD';
ALTER USER 'aioetl_admin'@'$host' IDENTIFIED BY '$ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'aioetl_admin'@'$host' WITH GRANT OPTION;
SQL
  done
}

ADMIN_PASSWORD=$(admin_password)
if [ "$mode" = docker ]; then
  users_sql % | mysql_admin source $MYSQL_PORT
  users_sql % | mysql_admin replica $REPLICA_PORT
else
  # Earlier versions created these users on '%' (any host), the administrator with all
  # privileges and a published password: removed where they remain.
  {
    for user in aioetl_admin aioetl_ro aioetl aioetl_secret_ro aioetl_secret_rw; do
      printf "DROP USER IF EXISTS '%s'@'%%';\n" "$user"
    done
    users_sql 127.0.0.1
  } | mysql_admin source $MYSQL_PORT
fi
psql_admin <.ci/sql/postgres-init.sql >/dev/null

# local.env holds passwords: private to its owner from its first byte. (Only from here:
# the servers started above keep their own file modes.)
umask 077
mkdir -p .aioetl
chmod 700 .aioetl
ENV_TMP=$(mktemp "$ENV_FILE.XXXXXX")
cat >"$ENV_TMP" <<ENV
# Written by .ci/services.sh: the local servers' variables. Values already set win.
# Production names point at the demo clinic; TEST_ names at the test databases.
export OPENDENTAL_SOURCE_HOST="\${OPENDENTAL_SOURCE_HOST:-127.0.0.1}"
export OPENDENTAL_SOURCE_PORT="\${OPENDENTAL_SOURCE_PORT:-$MYSQL_PORT}"
export OPENDENTAL_SOURCE_DB="\${OPENDENTAL_SOURCE_DB:-opendental}"
export OPENDENTAL_SOURCE_USER="\${OPENDENTAL_SOURCE_USER:-aioetl_ro}"
export OPENDENTAL_SOURCE_PASSWORD="\${OPENDENTAL_SOURCE_PASSWORD:-aioetl_ro_local}"
export OPENDENTAL_SOURCE_ADMIN_USER="\${OPENDENTAL_SOURCE_ADMIN_USER:-aioetl_admin}"
export OPENDENTAL_SOURCE_ADMIN_PASSWORD="\${OPENDENTAL_SOURCE_ADMIN_PASSWORD:-$ADMIN_PASSWORD}"
export MYSQL_REPLICATION_HOST="\${MYSQL_REPLICATION_HOST:-127.0.0.1}"
export MYSQL_REPLICATION_PORT="\${MYSQL_REPLICATION_PORT:-$REPLICA_PORT}"
export MYSQL_REPLICATION_DB="\${MYSQL_REPLICATION_DB:-opendental_replication}"
export MYSQL_REPLICATION_USER="\${MYSQL_REPLICATION_USER:-aioetl}"
export MYSQL_REPLICATION_PASSWORD="\${MYSQL_REPLICATION_PASSWORD:-aioetl_local}"
export POSTGRES_ANALYTICS_HOST="\${POSTGRES_ANALYTICS_HOST:-127.0.0.1}"
export POSTGRES_ANALYTICS_PORT="\${POSTGRES_ANALYTICS_PORT:-$PG_PORT}"
export POSTGRES_ANALYTICS_DB="\${POSTGRES_ANALYTICS_DB:-opendental_analytics}"
export POSTGRES_ANALYTICS_USER="\${POSTGRES_ANALYTICS_USER:-aioetl}"
export POSTGRES_ANALYTICS_PASSWORD="\${POSTGRES_ANALYTICS_PASSWORD:-aioetl_local}"
export POSTGRES_ANALYTICS_SCHEMA="\${POSTGRES_ANALYTICS_SCHEMA:-raw}"
export TEST_OPENDENTAL_SOURCE_HOST="\${TEST_OPENDENTAL_SOURCE_HOST:-127.0.0.1}"
export TEST_OPENDENTAL_SOURCE_PORT="\${TEST_OPENDENTAL_SOURCE_PORT:-$MYSQL_PORT}"
export TEST_OPENDENTAL_SOURCE_DB="\${TEST_OPENDENTAL_SOURCE_DB:-test_opendental}"
export TEST_OPENDENTAL_SOURCE_USER="\${TEST_OPENDENTAL_SOURCE_USER:-aioetl_ro}"
export TEST_OPENDENTAL_SOURCE_PASSWORD="\${TEST_OPENDENTAL_SOURCE_PASSWORD:-aioetl_ro_local}"
export TEST_OPENDENTAL_SOURCE_ADMIN_USER="\${TEST_OPENDENTAL_SOURCE_ADMIN_USER:-aioetl_admin}"
export TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD="\${TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD:-$ADMIN_PASSWORD}"
export TEST_MYSQL_REPLICATION_HOST="\${TEST_MYSQL_REPLICATION_HOST:-127.0.0.1}"
export TEST_MYSQL_REPLICATION_PORT="\${TEST_MYSQL_REPLICATION_PORT:-$REPLICA_PORT}"
export TEST_MYSQL_REPLICATION_DB="\${TEST_MYSQL_REPLICATION_DB:-test_opendental_replication}"
export TEST_MYSQL_REPLICATION_USER="\${TEST_MYSQL_REPLICATION_USER:-aioetl}"
export TEST_MYSQL_REPLICATION_PASSWORD="\${TEST_MYSQL_REPLICATION_PASSWORD:-aioetl_local}"
export TEST_POSTGRES_ANALYTICS_HOST="\${TEST_POSTGRES_ANALYTICS_HOST:-127.0.0.1}"
export TEST_POSTGRES_ANALYTICS_PORT="\${TEST_POSTGRES_ANALYTICS_PORT:-$PG_PORT}"
export TEST_POSTGRES_ANALYTICS_DB="\${TEST_POSTGRES_ANALYTICS_DB:-test_opendental_analytics}"
export TEST_POSTGRES_ANALYTICS_USER="\${TEST_POSTGRES_ANALYTICS_USER:-aioetl}"
export TEST_POSTGRES_ANALYTICS_PASSWORD="\${TEST_POSTGRES_ANALYTICS_PASSWORD:-aioetl_local}"
export TEST_POSTGRES_ANALYTICS_SCHEMA="\${TEST_POSTGRES_ANALYTICS_SCHEMA:-raw}"
ENV
chmod 600 "$ENV_TMP"
mv -f "$ENV_TMP" "$ENV_FILE"
say "databases ready ($mode); variables in $ENV_FILE"
