#!/usr/bin/env bash
# Start a private Redis for the test suite (127.0.0.1 only) and print its URL on the last line.
#
# Idempotent: installs Debian's `redis-server` when it is missing (one `apt-get update`, then
# `apt-get install -y redis-server`), starts a daemonized instance on 127.0.0.1:${REPLYDESK_REDIS_PORT:-56379}
# with its own directory (/tmp/replydesk-redis-PORT: pid file, log) and no persistence (the rate-limit
# counters it holds for tests are throw-away), and leaves a running one alone. Running it again changes
# nothing. Exits non-zero with a clear message when any step is impossible (e.g. not root and nothing
# installed, or the port taken by something that is not Redis).
set -euo pipefail

PORT="${REPLYDESK_REDIS_PORT:-56379}"
DIR="/tmp/replydesk-redis-${PORT}"
URL="redis://127.0.0.1:${PORT}"

say() { echo "redis.sh: $*" >&2; }
fail() { say "ERROR: $*"; say "the shared rate-limit (redis) tests will fail; other tests are unaffected."; exit 1; }

answers() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -qx PONG; }

# 1. Server binary (redis-cli comes with it, from redis-tools).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    fail "redis-server is not installed and this user is not root; run: sudo apt-get install -y redis-server"
  fi
  command -v apt-get >/dev/null 2>&1 || fail "redis-server is not installed and apt-get is not available"
  say "installing Debian's redis-server package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail "apt-get update failed"
  # Without systemd as PID 1 the package's own service does not start; we run our own instance anyway.
  apt-get install -y -qq redis-server >&2 || fail "apt-get install -y redis-server failed"
fi

# 2. A private instance on loopback, daemonized, no persistence.
if ! answers; then
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then
    fail "port ${PORT} is taken by something that does not answer Redis PING; set REPLYDESK_REDIS_PORT"
  fi
  mkdir -p "$DIR" || fail "could not create ${DIR}"
  say "starting redis-server on 127.0.0.1:${PORT} (dir ${DIR})"
  redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --daemonize yes \
    --dir "$DIR" --pidfile "${DIR}/redis.pid" --logfile "${DIR}/redis.log" \
    --save "" --appendonly no >&2 || fail "redis-server did not start (see ${DIR}/redis.log)"
  for _ in $(seq 1 40); do
    if answers; then break; fi
    sleep 0.25
  done
  answers || fail "redis-server on port ${PORT} does not answer (see ${DIR}/redis.log)"
fi

say "Redis is up on 127.0.0.1:${PORT}"
echo "$URL"
