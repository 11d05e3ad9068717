"""Test support for the workflow tests: a real app on a given database with a controllable clock, keys per
role, the real triage + drafting pipeline, and a local signed-webhook receiver (127.0.0.1 only)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.api import create_app
from service.auth.models import ApiKeyCreate
from service.clock import ManualClock
from service.container import Container
from service.pipeline.deps import get_message_pipeline
from service.settings import REPO_ROOT, Settings
from service.signing import InvalidSignature, ReplayGuard, verify_signature
from service.workflow.ports import MessagePipelinePort

WEBHOOK_SECRET = "whsec_test_5f2a"


def real_pipeline(shared: Container) -> MessagePipelinePort:
    """The session app's real pipeline (triage → articles → drafts with tone checks), loaded once per test
    run."""
    return shared.pipeline


def use_pipeline(app: Any, pipeline: MessagePipelinePort) -> None:
    """Ingest runs `pipeline` from now on: `POST /v1/messages` (its dependency) and the workers' queue of
    channel-webhook messages (the workflow's own pipeline)."""
    app.dependency_overrides[get_message_pipeline] = lambda: pipeline
    app.state.container.workflow.ctx.pipeline = pipeline


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


class _JSONHandler(BaseHTTPRequestHandler):
    """Quiet handler for the local test servers, answering JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, code: int, payload: Any) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval: shutdown() waits for it, once per test.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server


def _shutdown(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass
class WebhookReceiver:
    """A helpdesk stand-in: verifies every delivery's signature and drops replays, like a real receiver
    must."""

    clock: ManualClock
    secret: str = WEBHOOK_SECRET
    fail_next: int = 0  # answer 500 to this many requests first...
    fail_type: str | None = None  # ...of this event type only, when set
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    replays: int = 0
    attempts: int = 0
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/replydesk"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(_JSONHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.attempts += 1
                event_type = self.headers.get("X-ReplyDesk-Event")
                if receiver.fail_next > 0 and receiver.fail_type in (None, event_type):
                    receiver.fail_next -= 1
                    self._answer(500, {"error": "try later"})
                    return
                try:
                    now = receiver.clock.now()
                    verified = verify_signature(receiver.secret, dict(self.headers), raw, now)
                except InvalidSignature as exc:
                    receiver.rejected.append(exc.message)
                    self._answer(401, {"error": exc.message})
                    return
                body = json.loads(raw)
                if not receiver.guard.first_time(verified.event_id):  # the signed id, not a bare header
                    receiver.replays += 1
                    self._answer(200, {"duplicate": True})
                    return
                receiver.received.append(Received(dict(self.headers), body, raw))
                answer: dict[str, Any] = {"ok": True}
                if body["type"] == "message.outbound":
                    answer["channel_message_id"] = f"wamid.test{body['data']['message']['id']}"
                self._answer(200, answer)

        self._server = _serve(Handler)
        return self

    def stop(self) -> None:
        _shutdown(self._server)

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.body["type"] == type_]


@dataclass
class Harness:
    app: Any
    client: TestClient
    clock: ManualClock
    container: Container
    keys: dict[str, str]
    receiver: WebhookReceiver | None

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def post(self, path: str, role: str = "agent", **kw: Any):
        return self.client.post(path, headers=self.headers(role), **kw)

    def get(self, path: str, role: str = "agent", **kw: Any):
        return self.client.get(path, headers=self.headers(role), **kw)

    def ingest(
        self,
        text: str,
        *,
        conversation: str = "conv-1",
        customer: str = "cust-1",
        channel: str = "whatsapp",
        locale: str | None = "en-US",
        key: str | None = None,
        channel_message_id: str | None = None,
        sent_at: datetime | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "channel": channel,
            "conversation_external_id": conversation,
            "customer": {"id": customer, "name": "Ana", "locale": locale},
            "text": text,
            "sent_at": (sent_at or self.clock.now()).isoformat(),
            **extra,
        }
        if key:
            body["idempotency_key"] = key
        if channel_message_id:
            body["channel_message_id"] = channel_message_id
        r = self.post("/v1/messages", role="integration", json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def run_pipelines(self) -> int:
        """Run the pipelines the channel webhooks queued (what the pipeline workers do; they are off in
        tests)."""
        counts = self.container.workflow.recover_pipelines()
        return counts.run + counts.rerun

    def deliver(self) -> int:
        """Run the webhook dispatcher once (the background worker is off in tests, for determinism)."""
        return self.container.workflow.dispatcher.run_once()


@contextmanager
def harness(
    db_url: str, tmp_path: Path, shared: Container, *, webhook: bool = True, **overrides: Any
) -> Iterator[Harness]:
    clock = ManualClock()
    receiver = WebhookReceiver(clock).start() if webhook else None
    values: dict[str, Any] = {"workers_enabled": False, "webhook_backoff_s": 1.0, **overrides}
    settings = Settings(
        data_dir=tmp_path,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
        database_url=db_url,
        webhook_url=receiver.url if receiver else None,
        webhook_secret=WEBHOOK_SECRET,
        **values,
    )
    container = Container(settings)
    container.clock = clock
    container.tone = shared.tone
    app = create_app(settings, container=container, warm=False)
    use_pipeline(app, real_pipeline(shared))
    try:
        with TestClient(app) as client:
            keys = {
                role: container.keys.create(
                    ApiKeyCreate(name=f"t-{role}", role=role, rate_limit="100000/minute")
                ).key
                for role in ("integration", "agent", "admin", "evaluator")
            }
            yield Harness(app, client, clock, container, keys, receiver)
    finally:
        if receiver:
            receiver.stop()
        container.db.dispose()


@dataclass
class StubServer:
    """A local HTTP stand-in for a helpdesk system (order API, Chatwoot API): answers from `routes` and
    records every request. Only ever binds 127.0.0.1."""

    routes: dict[tuple[str, str], tuple[int, Any]]
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StubServer:
        stub = self

        class Handler(_JSONHandler):
            def _handle(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                stub.requests.append((method, self.path, dict(self.headers), raw))
                code, payload = stub.routes.get((method, self.path), (404, {"error": "not found"}))
                self._answer(code, payload)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        self._server = _serve(Handler)
        return self

    def stop(self) -> None:
        _shutdown(self._server)


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` every 20 ms until it holds or `timeout_s` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())
