"""The conversation panel embedded as a Chatwoot Dashboard App, in a real browser: a stand-in Chatwoot page on
another site (`localhost`, while ReplyDesk is `127.0.0.1`) frames `/console/embed/chatwoot` and answers its
`chatwoot-dashboard-app:fetch-info` with an `appContext` message in the shape Chatwoot posts; the agent signs
in inside the iframe once, the panel opens the matching conversation, shows its drafts and approves one."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from bench.load import free_port
from tests.browser_support import (
    Chromium,
    LiveConsole,
    format_violations,
    run_axe,
    serious_or_critical,
    start_console,
    stop_console,
)
from tests.workflow_harness import StubServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ACCOUNT_ID = 7


class _HostPage:
    """Chatwoot's side: a page on http://localhost:<port> with the Dashboard App iframe."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.html = ""
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                data = host.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def frame(self, app_url: str, context: dict[str, Any]) -> None:
        payload = json.dumps({"event": "appContext", "data": context})
        self.html = f"""<!doctype html><html lang="en">
<head><meta charset="utf-8"><title>Chatwoot</title></head>
<body><main><h1>Chatwoot conversation</h1>
<iframe id="app" title="ReplyDesk" src="{app_url}" width="420" height="900"></iframe></main>
<script>
const frame = document.getElementById("app");
const context = {json.dumps(payload)};
function send() {{ frame.contentWindow.postMessage(context, "*"); }}
frame.addEventListener("load", send);
window.addEventListener("message", (event) => {{
  if (event.data === "chatwoot-dashboard-app:fetch-info") send();
}});
</script></body></html>"""

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host_page() -> Iterator[_HostPage]:
    page = _HostPage(free_port())
    yield page
    page.stop()


@pytest.fixture(scope="module")
def chatwoot_api() -> Iterator[StubServer]:
    """Chatwoot's API for the replies the panel approves (answers like Create New Message)."""
    stub = StubServer(routes={}).start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def embed_console(host_page: _HostPage, chatwoot_api: StubServer) -> Iterator[LiveConsole]:
    console = start_console(
        {
            "REPLYDESK_CONSOLE_FRAME_ANCESTORS": host_page.origin,
            "REPLYDESK_CHATWOOT_BASE_URL": chatwoot_api.base_url,
            "REPLYDESK_CHATWOOT_API_TOKEN": "cw-token-embed",
            "REPLYDESK_CHATWOOT_WEBHOOK_SECRET": "cw-secret-embed",
        }
    )
    try:
        yield console
    finally:
        stop_console(console)


def test_the_panel_opens_the_chatwoot_conversation_and_approves_a_draft(
    chromium: Chromium, embed_console: LiveConsole, host_page: _HostPage, chatwoot_api: StubServer
) -> None:
    chatwoot_conversation = 4000 + int(uuid.uuid4().int % 1000)
    api_path = f"/api/v1/accounts/{ACCOUNT_ID}/conversations/{chatwoot_conversation}/messages"
    chatwoot_api.routes[("POST", api_path)] = (200, {"id": 777, "message_type": 1, "private": False})
    with embed_console.api("integration") as api:
        r = api.post(
            "/v1/messages",
            json={
                "channel": "whatsapp",
                "conversation_external_id": f"chatwoot:{ACCOUNT_ID}:{chatwoot_conversation}",
                "customer": {"id": "chatwoot:7:99", "name": "Maya Embed", "locale": "en-GB"},
                "text": "Hi, where is my parcel? Order 5521",
                "sent_at": datetime.now(UTC).isoformat(),
            },
        )
        assert r.status_code == 201, r.text
        ingested = r.json()
    context = {
        "conversation": {
            "id": chatwoot_conversation,
            "account_id": ACCOUNT_ID,
            "inbox_id": 3,
            "status": "open",
        },
        "contact": {"id": 99, "name": "Maya Embed"},
        "currentAgent": {"id": 1, "name": "Ana", "email": "ana@example.com"},
    }
    host_page.frame(f"{embed_console.base_url}/console/embed/chatwoot", context)

    page = chromium.new_page()
    page.goto(host_page.origin + "/")
    app = page.frame_locator("#app")
    app.get_by_role("link", name="Sign in").click()
    app.get_by_label("Your agent key").fill(embed_console.keys["ana"])
    app.get_by_role("button", name="Sign in").click()

    # signed in, the panel asks Chatwoot for the context and opens our conversation for it
    expect(app.locator(".draft").first).to_be_visible(timeout=10_000)
    expect(app.locator(".bubble").first).to_contain_text("where is my parcel")
    frame = next(f for f in page.frames if "/console/embed/chatwoot/conversations/" in f.url)
    bad = serious_or_critical(run_axe_frame(frame))
    assert bad == [], format_violations(bad)

    app.locator("#draft-1").get_by_role("button", name="Use as is").click()
    expect(app.locator("#done")).to_contain_text("approved")
    with embed_console.api("ana") as api:
        s = api.get(f"/v1/suggestions/{ingested['suggestions'][0]['id']}").json()
    assert s["decision"] == "approved" and s["decided_by"] == "ana"

    # the background worker posts the reply into the Chatwoot conversation as an outgoing message
    def replies() -> list[dict]:  # not the private notes with the drafts
        posted = [json.loads(raw) for method, path, _, raw in chatwoot_api.requests if path == api_path]
        return [p for p in posted if p.get("private") is False]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not replies():
        time.sleep(0.1)
    posted = replies()
    assert posted == [{"content": s["final_text"], "message_type": "outgoing", "private": False}]
    assert chromium.external_requests == []


def test_context_from_an_origin_that_is_not_chatwoot_is_ignored(
    chromium: Chromium, embed_console: LiveConsole
) -> None:
    page = chromium.new_page(extra_http_headers=embed_console.bearer("ana"))
    page.goto(f"{embed_console.base_url}/console/embed/chatwoot")
    forged = json.dumps(
        {"event": "appContext", "data": {"conversation": {"id": 1, "account_id": ACCOUNT_ID}}}
    )
    page.evaluate("(m) => window.postMessage(m, '*')", forged)  # same origin, not Chatwoot's
    page.wait_for_timeout(500)
    assert page.url.endswith("/console/embed/chatwoot")


def run_axe_frame(frame: Any) -> list[dict[str, Any]]:
    """`run_axe` for an iframe's document (Playwright frames evaluate like pages)."""
    return run_axe(frame)
