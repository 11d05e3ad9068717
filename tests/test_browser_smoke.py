"""The browser-test stack works before any console test relies on it: Debian's Chromium under Playwright
reaches a live `replydesk serve` on 127.0.0.1, and axe-core, injected past a strict Content-Security-Policy,
finds a deliberate accessibility violation and nothing on a clean page."""

from __future__ import annotations

import pytest

from tests.browser_support import format_violations, run_axe, serious_or_critical

pytestmark = pytest.mark.slow  # a live server and Chromium: `make test` only

# The console's kind of policy: scripts only from the page's own origin, so axe cannot come in as a <script>.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


def html_page(body: str, *, title: str = "axe smoke") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{STRICT_CSP}">'
        f"<title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )


PIXEL = (  # a 1x1 PNG, inline: the page needs no server
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@pytest.mark.browser
def test_chromium_opens_the_live_servers_health_page(live_console, chromium):
    page = chromium.new_page()
    response = page.goto(f"{live_console.base_url}/health")
    assert response is not None and response.status == 200, live_console.log_tail()
    assert '"status"' in page.content()
    assert chromium.external_requests == []


@pytest.mark.browser
def test_the_strict_csp_refuses_an_injected_script_tag(chromium):
    from playwright.sync_api import Error as PlaywrightError

    page = chromium.new_page()
    page.set_content(html_page("<p>Order status</p>"))

    with pytest.raises(PlaywrightError, match="Content Security Policy"):
        page.add_script_tag(content="window.injected = true")


@pytest.mark.browser
def test_axe_finds_an_image_without_alt_text_despite_a_strict_csp(chromium):
    page = chromium.new_page()
    page.set_content(html_page(f'<p>Order status</p><img src="{PIXEL}" width="1" height="1">'))

    violations = run_axe(page)

    assert [v["id"] for v in serious_or_critical(violations)] == ["image-alt"], format_violations(violations)
    assert "image-alt (critical)" in format_violations(violations)


@pytest.mark.browser
def test_axe_finds_nothing_on_a_clean_page(chromium):
    page = chromium.new_page()
    page.set_content(html_page(f'<p>Order status</p><img src="{PIXEL}" width="1" height="1" alt="">'))

    assert run_axe(page) == [], format_violations(run_axe(page))


@pytest.mark.browser
def test_axe_can_check_one_part_of_a_page(chromium):
    page = chromium.new_page()
    page.set_content(
        html_page(f'<section id="ok"><p>Fine</p></section><section id="bad"><img src="{PIXEL}"></section>')
    )

    assert run_axe(page, context="#ok") == []
    assert [v["id"] for v in run_axe(page, context="#bad")] == ["image-alt"]
