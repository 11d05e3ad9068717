"""Outbound webhook signatures: `X-ReplyDesk-Signature: t=<unix>,v2=<hex>` is HMAC-SHA256 over
`v2:{t}:{event id}:{raw body}`, so a changed body, event id or timestamp fails verification, a signature older
(or newer) than 300 s is refused, and a replayed event id is caught by the receiver's guard. The stand-alone
receiver examples in `docs/examples/` (Python and Node, shown in the README) accept what the service's own
dispatcher sends and refuse the same tampering."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from service.clock import Clock, ManualClock, SystemClock
from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.settings import REPO_ROOT
from service.signing import (
    SIGNATURE_HEADER,
    TOLERANCE_S,
    InvalidSignature,
    ReplayGuard,
    signed_headers,
    verify_signature,
)
from service.workflow.events import EventLog
from service.workflow.webhooks import WebhookDispatcher

SECRET = "whsec_sign_test_3c9d"
EXAMPLES = REPO_ROOT / "docs" / "examples"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BODY = b'{"id":42,"type":"message.outbound","data":{"text":"Hola"}}'


def _headers(event_id: int | str = 42, at: datetime = NOW, body: bytes = BODY, secret: str = SECRET) -> dict:
    return signed_headers(
        secret, int(at.timestamp()), body, event_id=event_id, event_type="message.outbound", delivery_id="d-1"
    )


def _with_signature_part(headers: dict, key: str, value: str) -> dict:
    parts = dict(p.split("=", 1) for p in headers[SIGNATURE_HEADER].split(","))
    parts[key] = value
    return {**headers, SIGNATURE_HEADER: ",".join(f"{k}={v}" for k, v in parts.items())}


# -- the scheme
# -----------------------------------------------------------------------------------------------


def test_the_signature_covers_version_timestamp_event_id_and_raw_body():
    headers = _headers()
    t = int(NOW.timestamp())
    mac = hmac.new(SECRET.encode(), f"v2:{t}:42:".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"t={t},v2={mac}"
    assert headers["X-ReplyDesk-Event-Id"] == "42"


def test_a_genuine_delivery_verifies_to_its_event_id_and_timestamp():
    verified = verify_signature(SECRET, _headers(), BODY, NOW)
    assert (verified.event_id, verified.timestamp) == ("42", int(NOW.timestamp()))


@pytest.mark.parametrize(
    ("tamper", "body"),
    [
        (lambda h: {**h, "X-ReplyDesk-Event-Id": "43"}, BODY),  # another event id on a captured delivery
        (lambda h: _with_signature_part(h, "t", str(int(NOW.timestamp()) + 60)), BODY),  # a moved timestamp
        (lambda h: h, BODY.replace(b"Hola", b"Adios")),  # another body
        (lambda h: _headers(secret="someone-else"), BODY),  # another secret
        (lambda h: {k: v for k, v in h.items() if k != SIGNATURE_HEADER}, BODY),  # unsigned
        (lambda h: {k: v for k, v in h.items() if k != "X-ReplyDesk-Event-Id"}, BODY),  # no event id
    ],
    ids=["event-id", "timestamp", "body", "secret", "unsigned", "no-event-id"],
)
def test_a_changed_event_id_timestamp_or_body_fails_verification(tamper, body):
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, tamper(_headers()), body, NOW)


def test_signatures_are_accepted_within_the_tolerance_and_refused_beyond_it():
    assert TOLERANCE_S == 300
    for offset in (-TOLERANCE_S, TOLERANCE_S):
        verify_signature(SECRET, _headers(), BODY, NOW + timedelta(seconds=offset))
    for offset in (-TOLERANCE_S - 1, TOLERANCE_S + 1):
        with pytest.raises(InvalidSignature, match="300 s"):
            verify_signature(SECRET, _headers(), BODY, NOW + timedelta(seconds=offset))


def test_a_replayed_event_id_is_detected_even_when_re_signed_later():
    guard = ReplayGuard()
    first = verify_signature(SECRET, _headers(), BODY, NOW)
    retry = verify_signature(
        SECRET, _headers(at=NOW + timedelta(seconds=30)), BODY, NOW + timedelta(seconds=30)
    )
    assert guard.first_time(first.event_id) is True
    assert guard.first_time(retry.event_id) is False
    assert guard.first_time(verify_signature(SECRET, _headers(event_id=43), BODY, NOW).event_id) is True


def test_without_a_secret_deliveries_carry_no_signature():
    headers = signed_headers(None, int(NOW.timestamp()), BODY, event_id=42, event_type="x", delivery_id="d")
    assert SIGNATURE_HEADER not in headers and headers["X-ReplyDesk-Event-Id"] == "42"


# -- the real dispatcher and the stand-alone examples
# -----------------------------------------------------------


def _load_python_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_webhook_example", EXAMPLES / "verify_webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Capture:
    """A receiver that keeps each delivery's headers and raw body (127.0.0.1 only)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                capture.deliveries.append((dict(self.headers), raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'signing.db'}")
    database.migrate()
    yield database
    database.dispose()


def _deliver(db: Database, url: str, clock: Clock, hook: Any = None) -> tuple[int, str]:
    """Emit one event to `url` and run the real dispatcher once; (event id, delivery status)."""
    with db.session() as s:
        log = EventLog(db, url, webhook_events=["*"])  # conversation.resolved is informational: opt in
        event = log.emit(s, "conversation.resolved", {"conversation_id": 7}, now=clock.now())
        event_id = event.id
    dispatcher = WebhookDispatcher(
        db, clock, secret=SECRET, max_attempts=3, backoff_s=1.0, backoff_max_s=5.0, timeout_s=5.0
    )
    if hook is not None:
        dispatcher.on_delivered["conversation.resolved"] = hook
    try:
        dispatcher.run_once()
    finally:
        dispatcher.close()
    with db.session() as s:
        status = s.query(WebhookDelivery).filter_by(event_id=event_id).one().status
    return event_id, status


def test_the_python_example_verifies_what_the_dispatcher_sends_and_refuses_tampering(db):
    example = _load_python_example()
    capture = Capture()
    clock = ManualClock(NOW)
    try:
        event_id, status = _deliver(db, capture.url, clock)
    finally:
        capture.stop()
    assert status == "delivered"
    [(headers, raw)] = capture.deliveries
    now = NOW.timestamp()
    assert example.verify(SECRET, headers, raw, now=now) == str(event_id)
    assert verify_signature(SECRET, headers, raw, NOW).event_id == str(event_id)  # the service's own helper
    forged_id = {**headers, "X-ReplyDesk-Event-Id": str(event_id + 1)}
    for bad_headers, bad_body, at in [
        (forged_id, raw, now),
        (headers, raw.replace(b"7", b"8"), now),
        (headers, raw, now + example.TOLERANCE_S + 1),
    ]:
        with pytest.raises(example.WebhookRejected):
            example.verify(SECRET, bad_headers, bad_body, now=at)
    seen = example.SeenEvents()
    assert seen.first_time(str(event_id), now) is True
    assert seen.first_time(str(event_id), now + 60) is False  # a replay or a retry already handled
    assert seen.first_time(str(event_id), now + seen.keep_s + 1) is True  # long forgotten


@pytest.fixture
def node_receiver() -> Iterator[str]:
    node = shutil.which("node")
    if node is None:  # Node 20 is part of the machine this project targets: its absence is a failure
        pytest.fail("node is not on PATH; the Node example cannot be checked")
    proc = subprocess.Popen(
        [node, str(EXAMPLES / "verify-webhook.mjs")],
        env={**os.environ, "REPLYDESK_WEBHOOK_SECRET": SECRET, "PORT": "0"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield f"http://127.0.0.1:{int(line.split()[-1])}/hooks"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow  # starts a Node process
def test_the_node_example_accepts_the_dispatchers_delivery_and_refuses_tampering_and_replays(
    db, node_receiver
):
    answers: list[dict] = []

    def keep_answer(_s: Session, _event: Event, response: httpx.Response) -> None:
        answers.append(response.json())

    event_id, status = _deliver(db, node_receiver, SystemClock(), keep_answer)
    assert status == "delivered"
    assert answers == [{"ok": True, "event_id": str(event_id), "type": "conversation.resolved"}]

    now = datetime.now(UTC)
    body = json.dumps({"id": 900, "type": "conversation.resolved", "data": {}}).encode()
    signed = _headers(event_id=900, at=now, body=body)
    with httpx.Client(timeout=5.0) as client:

        def post(headers: dict, content: bytes = body) -> httpx.Response:
            return client.post(node_receiver, content=content, headers=headers)

        assert post(signed).json() == {"ok": True, "event_id": "900", "type": "conversation.resolved"}
        assert post(signed).json() == {"duplicate": True, "event_id": "900"}  # replayed
        assert post({**signed, "X-ReplyDesk-Event-Id": "901"}).status_code == 401  # id swapped
        moved = _with_signature_part(signed, "t", str(int(now.timestamp()) - 1))
        assert post(moved).status_code == 401  # timestamp changed
        assert post(signed, body.replace(b"900", b"902")).status_code == 401  # body changed
        stale = _headers(event_id=903, at=now - timedelta(seconds=TOLERANCE_S + 5), body=body)
        assert post(stale).status_code == 401  # older than the tolerance

    # A delivery the dispatcher signed an hour ago (a clock far off) is refused, so it is not delivered.
    _, late = _deliver(db, node_receiver, ManualClock(now - timedelta(hours=1)))
    assert late == "pending"


def test_the_readme_shows_the_examples_own_code():
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Secrets and webhook verification", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```(python|js)\n(.*?)```", section, re.DOTALL)
    files = {"python": EXAMPLES / "verify_webhook.py", "js": EXAMPLES / "verify-webhook.mjs"}
    assert sorted(lang for lang, _ in blocks) == ["js", "python"]
    for lang, code in blocks:
        assert code in files[lang].read_text("utf-8"), (
            f"the README's {lang} snippet differs from {files[lang]}"
        )
