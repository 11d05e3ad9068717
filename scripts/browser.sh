#!/usr/bin/env bash
# The browser the console tests drive, and axe-core, which they run in its pages.
#
# Debian's chromium (Playwright's own browser downloads are not used: `playwright install` is never run; the
# tests hand Playwright /usr/bin/chromium as executable_path) and the axe-core pinned in
# tests/browser/package-lock.json. Idempotent: a second run with both in place touches neither apt nor npm.
# Exits non-zero with the reason when it cannot install them; `make test` then says so and the browser tests
# FAIL (tests/browser_support.py), never skip.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
CHROMIUM=/usr/bin/chromium
STAMP="$BROWSER_DIR/node_modules/.replydesk-lock.sha256"

fail() {
    echo "browser.sh: $*" >&2
    exit 1
}

APT_UPDATED=0
apt_install() {
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        # sudo -n: never hang on a password prompt in `make test`
        command -v sudo >/dev/null 2>&1 || fail "need root or sudo to apt-get install $*"
        sudo -n true 2>/dev/null || fail "need root or password-less sudo to apt-get install $*"
        as_root=(sudo -n)
    fi
    command -v apt-get >/dev/null 2>&1 || fail "no apt-get here: install $* yourself"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
            || fail "apt-get update failed (network or apt sources?)"
        APT_UPDATED=1
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
        || fail "apt-get install $* failed (reason above)"
}

if [ ! -x "$CHROMIUM" ]; then
    echo "browser.sh: $CHROMIUM is missing; installing Debian's chromium"
    apt_install chromium
    [ -x "$CHROMIUM" ] || fail "apt-get installed chromium but $CHROMIUM is still missing"
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "browser.sh: npm is missing; installing Debian's npm (for axe-core)"
    apt_install npm
fi

# npm ci deletes and reinstalls node_modules every time; the stamp (the lock's hash, written after a good
# install) makes the second run a no-op instead of a registry round trip.
lock_hash="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$lock_hash" ] \
    && [ -f "$BROWSER_DIR/node_modules/axe-core/axe.min.js" ]; then
    exit 0
fi
npm ci --prefix "$BROWSER_DIR" --ignore-scripts --no-audit --no-fund \
    || fail "npm ci in tests/browser failed (registry unreachable?)"
[ -f "$BROWSER_DIR/node_modules/axe-core/axe.min.js" ] || fail "npm ci ran but axe-core/axe.min.js is missing"
echo "$lock_hash" >"$STAMP"
echo "browser.sh: $("$CHROMIUM" --version 2>/dev/null | head -1), axe-core $(node -p "require('$BROWSER_DIR/node_modules/axe-core/package.json').version")"
