"""The console's front-end files are the pinned npm packages' own files, served by the app itself (issue #13).

`scripts/vendor_frontend.sh` copies them from the packages pinned in scripts/frontend/package-lock.json into
service/console/static/vendor/ and records each in VENDOR.json. These tests hold the committed files to that
record (a hand edit or a half-done upgrade shows up as a wrong sha256 or version) and keep every page free of
scripts and styles from another origin: the console's Content-Security-Policy would block them, and no CDN
sees who works the queue.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from service.settings import REPO_ROOT

FRONTEND = REPO_ROOT / "scripts" / "frontend"
CONSOLE = REPO_ROOT / "service" / "console"
VENDOR = CONSOLE / "static" / "vendor"

# what the console needs, and the major version it is written against (htmx 4 is another API)
REQUIRED = {"htmx.org": "2.0.", "htmx-ext-sse": "2.", "chart.js": "4."}


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def record() -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = _json(VENDOR / "VENDOR.json")["files"]
    return files


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    deps: dict[str, str] = _json(FRONTEND / "package.json")["dependencies"]
    return deps


@pytest.fixture(scope="module")
def lock() -> dict[str, dict[str, Any]]:
    packages: dict[str, dict[str, Any]] = _json(FRONTEND / "package-lock.json")["packages"]
    return packages


def test_every_vendored_file_is_byte_for_byte_what_its_record_says(record):
    assert record, "VENDOR.json lists no files"
    for name, entry in record.items():
        path = VENDOR / name
        assert path.is_file(), f"{name} is in VENDOR.json but not in {VENDOR}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], (
            f"{name} is not the file of {entry['package']}@{entry['version']}: "
            "re-run scripts/vendor_frontend.sh"
        )


def test_every_vendored_file_has_its_package_path_and_licence(record):
    for name, entry in record.items():
        assert set(entry) >= {"package", "version", "path", "sha256", "license"}, name
        assert entry["license"], f"{name}: no licence recorded"
        assert not entry["path"].startswith(("/", "..")), f"{name}: path must be inside the package"


def test_nothing_is_in_the_vendor_folder_without_a_record(record):
    on_disk = {p.name for p in VENDOR.iterdir() if p.is_file()} - {"VENDOR.json"}
    assert on_disk == set(record), "vendor/ and VENDOR.json disagree: re-run scripts/vendor_frontend.sh"


def test_the_pins_are_exact_and_of_the_major_versions_the_console_is_written_for(pins):
    assert set(pins) == set(REQUIRED)
    for package, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{package}: pin an exact version, not {version!r}"
        assert version.startswith(REQUIRED[package]), f"{package} {version}: want {REQUIRED[package]}x"


def test_every_vendored_version_is_the_pinned_and_locked_one(record, pins, lock):
    assert {entry["package"] for entry in record.values()} == set(pins), "a pinned package is not vendored"
    for name, entry in record.items():
        package = entry["package"]
        assert entry["version"] == pins[package], (
            f"{name}: vendored {entry['version']}, pinned {pins[package]}"
        )
        locked = lock[f"node_modules/{package}"]["version"]
        assert entry["version"] == locked, f"{name}: vendored {entry['version']}, locked {locked}"
        assert lock[""]["dependencies"][package] == pins[package], "package-lock.json is stale: npm install"


def test_the_sse_extension_runs_on_the_vendored_htmx(lock):
    # a nested copy would mean the extension wanted another htmx than the one the pages load
    assert "node_modules/htmx-ext-sse/node_modules/htmx.org" not in lock
    wanted = lock["node_modules/htmx-ext-sse"].get("dependencies", {}).get("htmx.org", "")
    assert wanted.startswith("^2."), wanted


# -- no script or style from another origin ------------------------------------------------------------------

# `<script ... src="http(s)://` or protocol-relative `//host`, the same for `<link ... href=`, and CSS imports
# or url()s of another origin. Templates may split a tag over lines, hence [^>]* across newlines.
_OFF_ORIGIN = r"""(?:https?:)?//"""
FOREIGN_ASSET = re.compile(
    rf"""<script\b[^>]*\bsrc\s*=\s*["']?\s*{_OFF_ORIGIN}"""
    rf"""|<link\b[^>]*\bhref\s*=\s*["']?\s*{_OFF_ORIGIN}"""
    rf"""|@import\s+(?:url\(\s*)?["']?\s*{_OFF_ORIGIN}"""
    rf"""|\burl\(\s*["']?\s*{_OFF_ORIGIN}""",
    re.IGNORECASE,
)
PAGE_SUFFIXES = {".html", ".htm", ".jinja", ".jinja2", ".j2", ".css", ".py", ".js"}


def foreign_assets(text: str) -> list[str]:
    """The references in `text` to a script or style served from another origin."""
    return [m.group(0) for m in FOREIGN_ASSET.finditer(text)]


@pytest.mark.parametrize(
    "html",
    [
        '<script src="https://unpkg.com/htmx.org@2.0.11"></script>',
        "<script defer\n  src='http://cdn.example/x.js'></script>",
        '<script src="//cdn.jsdelivr.net/npm/chart.js"></script>',
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Inter">',
        '<LINK HREF="//cdn.example/site.css" rel=stylesheet>',
        "@import url('https://fonts.googleapis.com/css2?family=Inter');",
        "body { background: url(https://cdn.example/bg.png) }",
    ],
)
def test_a_script_or_style_from_another_origin_is_caught(html):
    assert foreign_assets(html)


@pytest.mark.parametrize(
    "html",
    [
        '<script src="/console/static/vendor/htmx.min.js"></script>',
        "<script src=\"{{ url_for('console-static', path='vendor/sse.min.js') }}\"></script>",
        '<link rel="stylesheet" href="/console/static/console.css">',
        '<a href="https://help.northwind.example/en/orders">the help article</a>',
        '<link rel="canonical" href="/console/queue">',
    ],
)
def test_own_files_and_plain_links_are_not_flagged(html):
    assert foreign_assets(html) == []


def test_no_console_page_loads_a_script_or_style_from_another_origin():
    # before the console has templates this checks nothing, and from the first template on, everything
    hits = {}
    for path in sorted(CONSOLE.rglob("*")) if CONSOLE.is_dir() else []:
        if not path.is_file() or path.suffix not in PAGE_SUFFIXES or VENDOR in path.parents:
            continue
        found = foreign_assets(path.read_text("utf-8", errors="replace"))
        if found:
            hits[str(path.relative_to(REPO_ROOT))] = found
    assert hits == {}, f"scripts or styles from another origin (vendor them instead): {hits}"
