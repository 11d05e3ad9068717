#!/usr/bin/env bash
# Start a local PostgreSQL for the test suite (127.0.0.1 only) and print its SQLAlchemy URL on the last line.
#
# Idempotent: installs Debian's `postgresql` when it is missing (one `apt-get update`, then
# `apt-get install -y postgresql`), creates a private cluster `replydesk` on 127.0.0.1:${REPLYDESK_PG_PORT:-55432}
# when it does not exist, starts it when it is down, and creates the role `replydesk` (password `replydesk`,
# CREATEDB so tests can make throw-away databases) and the database `replydesk_test`. Running it again changes
# nothing. Exits non-zero with a clear message when any step is impossible (e.g. not root and nothing installed).
set -euo pipefail

PORT="${REPLYDESK_PG_PORT:-55432}"
CLUSTER="replydesk"
ROLE="replydesk"
PASSWORD="replydesk"
DB="replydesk_test"
URL="postgresql+psycopg://${ROLE}:${PASSWORD}@127.0.0.1:${PORT}/${DB}"

say() { echo "postgres.sh: $*" >&2; }
fail() { say "ERROR: $*"; say "the PostgreSQL storage tests will fail; SQLite tests are unaffected."; exit 1; }

as_postgres() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    sudo -n -u postgres -- "$@"
  fi
}

# 1. Server binaries.
# (psql alone, from postgresql-client, is not enough: look for the server binary itself.)
if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    fail "PostgreSQL is not installed and this user is not root; run: sudo apt-get install -y postgresql"
  fi
  command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL is not installed and apt-get is not available"
  say "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail "apt-get update failed"
  # Debian's postinst would create and start a default 'main' cluster; we only need our own.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/replydesk-no-main.conf
  apt-get install -y -qq postgresql >&2 || fail "apt-get install -y postgresql failed"
fi
VERSION="$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | awk -F/ '{print $5}' | sort -V | tail -n 1)"
[ -n "$VERSION" ] || fail "no PostgreSQL server version under /usr/lib/postgresql"

# 2. A private cluster listening on 127.0.0.1 only.
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "${VERSION} ${CLUSTER}"; then
  say "creating cluster ${VERSION}/${CLUSTER} on 127.0.0.1:${PORT}"
  pg_createcluster "$VERSION" "$CLUSTER" --port "$PORT" >&2 || fail "pg_createcluster failed"
fi
# Loopback only; a throw-away test server needs no durability. Debian's postgresql.conf includes conf.d/ last.
CONF_DIR="/etc/postgresql/${VERSION}/${CLUSTER}/conf.d"
WANTED="listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200"
if [ "$(cat "${CONF_DIR}/replydesk.conf" 2>/dev/null || true)" != "$WANTED" ]; then
  mkdir -p "$CONF_DIR"
  printf '%s\n' "$WANTED" > "${CONF_DIR}/replydesk.conf" || fail "could not write ${CONF_DIR}/replydesk.conf"
  CONFIG_CHANGED=1
fi
STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
ACTUAL_PORT="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $3}')"
if [ "$ACTUAL_PORT" != "$PORT" ]; then
  fail "cluster ${VERSION}/${CLUSTER} exists on port ${ACTUAL_PORT}, not ${PORT}; set REPLYDESK_PG_PORT=${ACTUAL_PORT}"
fi
if [ "$STATUS" = "online" ] && [ "${CONFIG_CHANGED:-0}" = "1" ]; then
  pg_ctlcluster "$VERSION" "$CLUSTER" restart >&2 || fail "could not restart cluster ${VERSION}/${CLUSTER}"
elif [ "$STATUS" != "online" ]; then
  say "starting cluster ${VERSION}/${CLUSTER}"
  # Without systemd as PID 1, pg_ctlcluster starts the server itself.
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2 || fail "could not start cluster ${VERSION}/${CLUSTER} (see /var/log/postgresql/)"
fi
for _ in $(seq 1 30); do
  if as_postgres psql -p "$PORT" -h /var/run/postgresql -tAc "select 1" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
as_postgres psql -p "$PORT" -h /var/run/postgresql -tAc "select 1" >/dev/null 2>&1 || fail "server on port ${PORT} does not answer"

# 3. Role and database.
psql_admin() { as_postgres psql -v ON_ERROR_STOP=1 -p "$PORT" -h /var/run/postgresql -tAc "$1"; }
if [ "$(psql_admin "select 1 from pg_roles where rolname='${ROLE}'")" != "1" ]; then
  psql_admin "create role ${ROLE} login createdb password '${PASSWORD}'" >/dev/null || fail "could not create role ${ROLE}"
fi
if [ "$(psql_admin "select 1 from pg_database where datname='${DB}'")" != "1" ]; then
  psql_admin "create database ${DB} owner ${ROLE}" >/dev/null || fail "could not create database ${DB}"
fi

say "PostgreSQL ${VERSION} cluster '${CLUSTER}' is up on 127.0.0.1:${PORT}"
echo "$URL"
