#!/usr/bin/env bash
# Vendor the agent console's front-end files from the npm packages pinned in scripts/frontend/package-lock.json
# into service/console/static/vendor/, and record where each came from in VENDOR.json.
#
# The console serves these files itself (no CDN: its Content-Security-Policy allows only 'self'), so they are
# committed; this script is how they are (re)made, and tests/test_console_vendor.py checks that the committed
# files still are byte for byte what the pinned packages ship. To upgrade: change the pin in
# scripts/frontend/package.json, `npm install --package-lock-only --prefix scripts/frontend`, run this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONTEND="$ROOT/scripts/frontend"
VENDOR="$ROOT/service/console/static/vendor"

if ! command -v npm >/dev/null 2>&1; then
    echo "vendor_frontend.sh: npm is not installed (Debian: apt-get install -y --no-install-recommends npm)" >&2
    exit 1
fi

# --ignore-scripts: nothing from the registry runs here; we only copy files out of the tarballs.
npm ci --prefix "$FRONTEND" --ignore-scripts --no-audit --no-fund

mkdir -p "$VENDOR"

# file in vendor/ <- package, path inside the package. The minified builds are what the packages publish for
# browsers; taking them verbatim keeps every file's sha256 checkable against the package.
node - "$FRONTEND" "$VENDOR" <<'JS'
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");

const [frontend, vendor] = process.argv.slice(2);
const FILES = [
  ["htmx.min.js", "htmx.org", "dist/htmx.min.js"],
  ["sse.min.js", "htmx-ext-sse", "dist/sse.min.js"],
  ["chart.umd.min.js", "chart.js", "dist/chart.umd.min.js"],
];
// Packages whose package.json has no "license" field but ship a LICENSE file: its heading names the licence.
const LICENSE_HEADINGS = { "BSD Zero Clause License": "0BSD", "MIT License": "MIT" };

function licence(pkgDir, meta) {
  if (typeof meta.license === "string" && meta.license) return meta.license;
  for (const name of ["LICENSE", "LICENSE.md", "LICENSE.txt"]) {
    const file = path.join(pkgDir, name);
    if (!fs.existsSync(file)) continue;
    const heading = fs.readFileSync(file, "utf8").trim().split("\n")[0].trim();
    if (LICENSE_HEADINGS[heading]) return LICENSE_HEADINGS[heading];
    throw new Error(`${meta.name}: unrecognised licence heading ${JSON.stringify(heading)} in ${name}`);
  }
  throw new Error(`${meta.name}: no licence in package.json and no LICENSE file`);
}

const lock = JSON.parse(fs.readFileSync(path.join(frontend, "package-lock.json"), "utf8"));
const files = {};
for (const [target, pkg, inner] of FILES) {
  const pkgDir = path.join(frontend, "node_modules", pkg);
  const meta = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
  const locked = lock.packages[`node_modules/${pkg}`];
  if (!locked || locked.version !== meta.version) {
    throw new Error(`${pkg}: installed ${meta.version} but the lock says ${locked && locked.version}`);
  }
  const bytes = fs.readFileSync(path.join(pkgDir, inner));
  fs.writeFileSync(path.join(vendor, target), bytes);
  files[target] = {
    package: pkg,
    version: meta.version,
    path: inner,
    sha256: crypto.createHash("sha256").update(bytes).digest("hex"),
    license: licence(pkgDir, meta),
  };
}
// No timestamp: re-running with the same pins must leave the tree unchanged.
const record = {
  generated_by: "scripts/vendor_frontend.sh",
  source: "npm packages pinned in scripts/frontend/package-lock.json",
  files,
};
fs.writeFileSync(path.join(vendor, "VENDOR.json"), JSON.stringify(record, null, 2) + "\n");
for (const [name, f] of Object.entries(files)) {
  console.log(`vendored ${name} <- ${f.package}@${f.version}/${f.path} (${f.license}) sha256=${f.sha256}`);
}
JS
