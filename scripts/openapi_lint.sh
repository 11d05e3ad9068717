#!/usr/bin/env bash
# Lints the service's OpenAPI schema with Redocly CLI (`make lint` runs this).
#
# The schema is the one the app serves at /openapi.json, written to a temporary file by the project's Python
# (the app is built without starting it: no model is loaded). Redocly CLI is the version pinned in
# scripts/openapi/package-lock.json, installed there with `npm ci` when missing or stale (a stamp of the lock's
# hash makes the next run a no-op). The rules are redocly.yaml's (recommended, warnings as errors). Exits
# non-zero with the reason when npm cannot install the CLI or the schema has any problem.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL_DIR="$ROOT/scripts/openapi"
REDOCLY="$TOOL_DIR/node_modules/.bin/redocly"
STAMP="$TOOL_DIR/node_modules/.replydesk-lock.sha256"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

fail() {
    echo "openapi_lint.sh: $*" >&2
    exit 1
}

command -v npm >/dev/null 2>&1 || fail "npm is missing: install Node.js 20.19+ with npm to lint the schema"
[ -x "$PYTHON" ] || fail "$PYTHON is missing: run \`make lint\` (it installs the virtualenv) or set PYTHON"

lock_hash="$(sha256sum "$TOOL_DIR/package-lock.json" | cut -d' ' -f1)"
if ! { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$lock_hash" ] && [ -x "$REDOCLY" ]; }; then
    npm ci --prefix "$TOOL_DIR" --ignore-scripts --no-audit --no-fund \
        || fail "npm ci in scripts/openapi failed (registry unreachable?)"
    [ -x "$REDOCLY" ] || fail "npm ci ran but $REDOCLY is missing"
    echo "$lock_hash" >"$STAMP"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Built in the temporary folder: a developer's `.env` (read from the working directory) does not shape it.
(cd "$work" && "$PYTHON" - "$work/replydesk-openapi.json") <<'PY' || fail "could not build the OpenAPI schema (above)"
import json
import sys
from pathlib import Path

from service.api import create_app
from service.settings import Settings

data_dir = Path(sys.argv[1]).parent / "data"
app = create_app(Settings(data_dir=data_dir, llm_base_url=None), warm=False)
Path(sys.argv[1]).write_text(json.dumps(app.openapi(), indent=1, ensure_ascii=False), encoding="utf-8")
PY

# No telemetry, no update check: the lint talks to nothing.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
"$REDOCLY" lint --config "$ROOT/redocly.yaml" --format=codeframe "$work/replydesk-openapi.json"
