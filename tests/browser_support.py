"""What the browser tests stand on: a live `replydesk serve`, Debian's Chromium under Playwright, axe-core.

Use from a test module that is slow as a whole (`make test-fast` then does not even import it, see
tests/conftest.py) and mark its tests `browser`; the fixtures are registered for every test module by
tests/conftest.py (`pytest_plugins`):

    from tests.browser_support import format_violations, run_axe, serious_or_critical

    pytestmark = pytest.mark.slow  # a live server and Chromium: `make test` only

    @pytest.mark.browser
    def test_queue(live_console, chromium):
        page = chromium.new_page(extra_http_headers=live_console.bearer("ana"))
        ...
        assert not serious_or_critical(run_axe(page)), format_violations(run_axe(page))

Chromium and axe-core come from `bash scripts/browser.sh` (`make test` runs it). When either is missing the
fixtures FAIL naming that script: a console nobody checked in a browser is not a pass.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bench.console import CHROMIUM_ARGS as BENCH_CHROMIUM_ARGS
from bench.load import Server
from service.settings import REPO_ROOT

if TYPE_CHECKING:  # playwright is imported lazily: collecting a module that uses this must not need it
    from playwright.sync_api import Browser, BrowserContext, Page, Request

CHROMIUM_PATH = Path("/usr/bin/chromium")
AXE_PATH = REPO_ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
INSTALL_HINT = "run `bash scripts/browser.sh` (`make test` does)"

# The launch flags are the bench's (bench/console.py): root without a GPU, no request beyond 127.0.0.1.
CHROMIUM_ARGS = BENCH_CHROMIUM_ARGS

# SLA targets short enough that a test sees a conversation go ok -> at_risk -> breached in seconds, spread
# over the urgencies so a test picks the pace by the urgency of the message it ingests: critical at risk after
# 7.5 s and breached after 15 s, high 15 s / 30 s, normal 1 / 2 min, low 5 / 10 min (at_risk_ratio 0.5).
SLA_MINUTES = {"critical": 0.25, "high": 0.5, "normal": 2.0, "low": 10.0}
SLA_AT_RISK_RATIO = 0.5

CONSOLE_ENV = {
    # the SSE stream looks for new events this often: a queue row may appear within 2 s of its ingest
    "REPLYDESK_EVENTS_POLL_S": "0.1",
    # the SLA scanner (a background worker) turns at-risk / breached into events only when it runs
    "REPLYDESK_WORKER_INTERVAL_S": "0.25",
    "REPLYDESK_SLA_FIRST_RESPONSE_MINUTES": json.dumps(SLA_MINUTES),
    "REPLYDESK_SLA_NEXT_RESPONSE_MINUTES": json.dumps(SLA_MINUTES),
    "REPLYDESK_SLA_AT_RISK_RATIO": str(SLA_AT_RISK_RATIO),
}

# name -> role of the keys every live console has. A browser fires many requests (pages, htmx swaps, the SSE
# reconnects, static files): each key gets a limit no test reaches.
CONSOLE_KEYS = {
    "admin": "admin",
    "ana": "agent",
    "ben": "agent",
    "auditor": "auditor",
    "evaluator": "evaluator",
    "integration": "integration",
}
KEY_RATE_LIMIT = "1000000/minute"


@dataclass
class LiveConsole:
    """A running `replydesk serve` on 127.0.0.1 with its own data directory, and its keys by name."""

    base_url: str
    keys: dict[str, str]
    server: Server
    sla_minutes: dict[str, float] = field(default_factory=lambda: dict(SLA_MINUTES))
    sla_at_risk_ratio: float = SLA_AT_RISK_RATIO

    def bearer(self, name: str) -> dict[str, str]:
        """Headers that sign in as key `name` without the login form (for `new_page(extra_http_headers=)`)."""
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def api(self, name: str) -> httpx.Client:
        """An HTTP client on the live server as key `name`: set up data (ingest, receipts) around a page."""
        return httpx.Client(base_url=self.base_url, headers=self.bearer(name), timeout=60)

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for an assertion message."""
        try:
            return self.server.log_path.read_text("utf-8", errors="replace")[-chars:]
        except OSError as exc:
            return f"(no server log: {exc})"


def start_console(extra_env: dict[str, str] | None = None) -> LiveConsole:
    """Create the data directory and keys, start the server; the caller stops it (`stop_console`)."""
    server = Server.create(extra_env={**CONSOLE_ENV, **(extra_env or {})})
    try:
        # keys before the server starts: it then never has to notice keys created behind its back
        keys = {
            name: server._cli(
                "keys", "create", "--role", role, "--name", name, "--rate-limit", KEY_RATE_LIMIT
            )
            .strip()
            .splitlines()[-1]
            for name, role in CONSOLE_KEYS.items()
        }
        server.start()
    except (RuntimeError, OSError):
        server.stop()
        server.cleanup()
        raise
    return LiveConsole(base_url=server.base_url, keys=keys, server=server)


def stop_console(console: LiveConsole) -> None:
    console.server.stop()
    console.server.cleanup()


@pytest.fixture(scope="module")
def live_console() -> Iterator[LiveConsole]:
    """A real `replydesk serve` for the module's tests (one start-up per module: it builds an index)."""
    try:
        console = start_console()
    except RuntimeError as exc:
        pytest.fail(f"the live console did not start: {exc}")
    try:
        yield console
    finally:
        stop_console(console)


# -- Chromium ------------------------------------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Chromium:
    """Debian's Chromium under Playwright. Every page gets its own context (cookies, storage), so two pages
    are two independent agents."""

    browser: Browser
    # every request a page made to anything but 127.0.0.1 (a CDN link, a font): tests assert this stays empty
    external_requests: list[str] = field(default_factory=list)
    _contexts: list[BrowserContext] = field(default_factory=list)

    def new_page(
        self, *, viewport: tuple[int, int] = (1280, 800), locale: str = "en-GB", **context_options: Any
    ) -> Page:
        """A fresh page; `viewport=(390, 844)` for a phone, `extra_http_headers=console.bearer(name)` to be
        signed in, other keyword arguments go to `browser.new_context`."""
        width, height = viewport
        context = self.browser.new_context(
            viewport={"width": width, "height": height}, locale=locale, **context_options
        )
        context.on("request", self._record)
        self._contexts.append(context)
        return context.new_page()

    def _record(self, request: Request) -> None:
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and not _is_loopback(request.url):
            self.external_requests.append(request.url)

    def close_pages(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()


def require_browser() -> None:
    """FAIL (never skip) when what the browser tests need is missing."""
    if importlib.util.find_spec("playwright") is None:
        pytest.fail(
            f"the playwright package is missing (`.venv/bin/pip install -e '.[test]'`); {INSTALL_HINT}"
        )
    if not CHROMIUM_PATH.is_file():
        pytest.fail(f"{CHROMIUM_PATH} is missing: {INSTALL_HINT}")
    if not AXE_PATH.is_file():
        pytest.fail(f"axe-core is not installed at {AXE_PATH.relative_to(REPO_ROOT)}: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def chromium(request: pytest.FixtureRequest) -> Iterator[Chromium]:
    """Headless /usr/bin/chromium for the module's tests (Playwright's own browsers are never downloaded)."""
    if request.node.get_closest_marker("slow") is None:
        pytest.fail(
            "a browser test belongs in a module with `pytestmark = pytest.mark.slow` (make test-fast)"
        )
    require_browser()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            pytest.fail(f"Chromium did not start ({exc.message}); {INSTALL_HINT}")
        session = Chromium(browser=browser)
        try:
            yield session
        finally:
            session.close_pages()
            browser.close()


# -- axe-core ------------------------------------------------------------------------------------------------

SERIOUS = frozenset({"serious", "critical"})


def run_axe(page: Page, *, context: str | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (or in the element matching CSS selector `context`).

    axe is injected with `page.evaluate`, not a <script> tag: the console's Content-Security-Policy allows
    only its own scripts, and Playwright's evaluate is not subject to it."""
    if not AXE_PATH.is_file():
        pytest.fail(f"axe-core is not installed at {AXE_PATH.relative_to(REPO_ROOT)}: {INSTALL_HINT}")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_PATH.read_text("utf-8"))
    violations: list[dict[str, Any]] = page.evaluate(
        """async (selector) => {
            const target = selector === null ? document : document.querySelector(selector);
            if (target === null) throw new Error(`run_axe: nothing matches ${selector}`);
            const results = await axe.run(target, {resultTypes: ['violations']});
            return results.violations;
        }""",
        context,
    )
    return violations


def serious_or_critical(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations the console must not have (issue #13: zero serious or critical)."""
    return [v for v in violations if v.get("impact") in SERIOUS]


def format_violations(violations: list[dict[str, Any]], *, nodes_per_rule: int = 3) -> str:
    """One paragraph per rule with the elements that break it, for an assertion message."""
    if not violations:
        return "no axe violations"
    lines = [f"{len(violations)} axe violation(s):"]
    for v in violations:
        nodes = v.get("nodes", [])
        lines.append(f"- {v.get('id')} ({v.get('impact')}): {v.get('help')} [{len(nodes)} element(s)]")
        for node in nodes[:nodes_per_rule]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(f"    {target}: {str(node.get('html', ''))[:160]}")
        if len(nodes) > nodes_per_rule:
            lines.append(f"    … and {len(nodes) - nodes_per_rule} more")
        if v.get("helpUrl"):
            lines.append(f"    {v['helpUrl']}")
    return "\n".join(lines)
