"""Secrets stay secret: credentials in settings (a password in the LLM base URL, API keys, tokens in query
strings) never appear in /health, in `describe()` outputs, in error messages or in any log record, httpx's
and the OpenAI SDK's DEBUG logs included; and the service warns, at start and in /health, when a webhook
would go unsigned or be accepted unverified."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from bench.stub_llm import StubHandler, chat_completion
from bench.stub_llm import StubServer as StandInServer
from service.api import create_app
from service.container import Container
from service.db import Database
from service.drafting.drafter import Drafter
from service.drafting.llm import ChatPrompt, LLMClient
from service.errors import ServiceUnavailable, install_error_handlers
from service.integrations.context import HttpOrderStatusProvider
from service.logging import JsonFormatter, install_log_redaction
from service.redaction import redact, redact_values
from service.settings import REPO_ROOT, Settings
from service.tone.checker import ToneChecker
from service.triage.taxonomy import load_taxonomy

PASSWORD = "s3cret-Pw-71"
API_KEY = "sk-live-9f8e7d6c5b4a"


# -- the redaction rule
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("http://user:s3cret@127.0.0.1:8080/v1", "http://user:***@127.0.0.1:8080/v1"),
        ("postgresql+psycopg://app:p%40ss@db:5432/rd", "postgresql+psycopg://app:***@db:5432/rd"),
        ("https://ghp_tok3n@git.example/x.git", "https://***@git.example/x.git"),  # a token as the user
        ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unencoded @ in the password
        ("GET /hook?api_key=rdk_abc&x=1 HTTP/1.1", "GET /hook?api_key=***&x=1 HTTP/1.1"),
        ("/orders/1?token=t0k&access_token=a1&key=AIza9", "/orders/1?token=***&access_token=***&key=***"),
        (
            "?hub.mode=subscribe&hub.verify_token=vt9&hub.challenge=5",
            "?hub.mode=subscribe&hub.verify_token=***&hub.challenge=5",
        ),
        ("Authorization: Bearer sk-abc123456", "Authorization: ***"),
        ("{'Authorization': 'Basic dXNlcjpwdw=='}", "{'Authorization': '***'}"),
        ("sent with Bearer abcdefgh1234 to the API", "sent with Bearer *** to the API"),
        (
            '{"webhook_secret": "whsec_1", "api_access_token": "cw1"}',
            '{"webhook_secret": "***", "api_access_token": "***"}',
        ),
        ("X-Api-Key: k-123", "X-Api-Key: ***"),
        ("""{"password": "it's \\"quoted\\"", "n": 1}""", '{"password": "***", "n": 1}'),
    ],
)
def test_credentials_in_urls_queries_and_headers_become_stars(text, redacted):
    assert redact(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:////srv/replydesk/data/replydesk.db",
        "https://help.northwind.example/en/orders/track",
        "prompt_tokens=12 completion_tokens: 40 max_tokens=700",
        "idempotency_key=evt_42 cache_key=ab12",
        "mail ana@example.com about order NW-48213",
        "Settings(webhook_secret=None)",
    ],
)
def test_text_without_credentials_is_left_alone(text):
    assert redact(text) == text


def test_nested_values_are_redacted_and_their_keys_kept():
    value = {"detail": {"base_url": "http://u:pw@h/v1", "calls": 3, "seen": ["token=t1", 2]}}
    assert redact_values(value) == {
        "detail": {"base_url": "http://u:***@h/v1", "calls": 3, "seen": ["token=***", 2]}
    }


# -- a local OpenAI-compatible stand-in and a failing order-status provider (127.0.0.1 only)
# ----------------------


@dataclass
class StubServer:
    """Answers every POST with a chat completion and every GET with `get_status`; keeps the request
    headers."""

    get_status: int = 200
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: StandInServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    def start(self) -> StubServer:
        stub = self

        class Handler(StubHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.read_body()
                stub.requests.append(dict(self.headers))
                content = json.dumps({"text": "Your parcel left the warehouse today."})
                self.send_json(200, chat_completion(content, prompt_tokens=5, completion_tokens=7))

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                stub.requests.append(dict(self.headers))
                self.send_json(stub.get_status, {"error": "down"})

        self._server = StandInServer(Handler).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


@pytest.fixture
def redacting_logs() -> Iterator[None]:
    """The service's log redaction (what `configure_logging` and `Container.start` install), undone after."""
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    install_log_redaction()
    yield
    logging.setLogRecordFactory(previous)


class Reply(BaseModel):
    text: str


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "cache_dir": REPO_ROOT / "data" / "cache",
        "llm_base_url": None,
        "workers_enabled": False,
        **overrides,
    }
    return Settings(**values)


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The captured text plus each record as the service ships it (JSON, `extra=` fields included)."""
    formatter = JsonFormatter()
    return caplog.text + "\n".join(formatter.format(r) for r in caplog.records)


def _secrets_in(text: str) -> list[str]:
    return [s for s in (PASSWORD, API_KEY) if s in text]


# -- the LLM endpoint
# -----------------------------------------------------------------------------------------


def test_the_llm_password_is_in_neither_describe_nor_the_drafting_health(tmp_path, stub):
    settings = _settings(
        tmp_path, llm_base_url=f"http://bot:{PASSWORD}@127.0.0.1:{stub.port}/v1", llm_api_key=API_KEY
    )
    drafter = Drafter.from_settings(
        settings, tone=ToneChecker.from_settings(settings), taxonomy=load_taxonomy(settings.intents_path)
    )
    try:
        shown = json.dumps([drafter.describe(), drafter.health()])
        assert _secrets_in(shown) == []
        assert drafter.health()["detail"]["base_url"] == f"http://bot:***@127.0.0.1:{stub.port}/v1"
    finally:
        drafter.close()


def test_a_real_llm_call_logs_no_credential_even_at_debug(stub, redacting_logs, caplog):
    caplog.set_level(logging.DEBUG)
    llm = LLMClient(base_url=f"http://bot:{PASSWORD}@127.0.0.1:{stub.port}/v1", model="stub", api_key=API_KEY)
    try:
        answer = llm.structured(
            ChatPrompt("probe", "v1", [{"role": "user", "content": "where is it?"}]), Reply
        )
    finally:
        llm.close()
    assert answer.text.startswith("Your parcel")
    assert len(stub.requests) == 1  # the call really went out, credentials and all
    assert _secrets_in(_everything_logged(caplog)) == []
    # openai 3.x logs through its own httpx fork (`httpx2`, `httpcore2`); older ones through httpx itself
    http_lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert any(f"http://bot:***@127.0.0.1:{stub.port}/v1/chat/completions" in line for line in http_lines)
    loggers = {r.name.split(".")[0].rstrip("0123456789") for r in caplog.records}
    assert loggers >= {"httpx", "httpcore", "openai"}


def test_starting_the_service_turns_log_redaction_on(tmp_path, caplog):
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        with TestClient(create_app(_settings(tmp_path), warm=False)):
            logging.getLogger("uvicorn.access").warning(
                "GET /v1/channels/whatsapp/webhook?api_key=%s", API_KEY
            )
    finally:
        logging.setLogRecordFactory(previous)
    assert "api_key=***" in caplog.text
    assert _secrets_in(_everything_logged(caplog)) == []


def test_redacted_records_keep_their_args_so_uvicorns_access_formatter_still_works(redacting_logs, caplog):
    from uvicorn.logging import AccessFormatter

    caplog.set_level(logging.INFO, logger="uvicorn.access")
    path = f"/v1/channels/messenger/webhook?api_key={API_KEY}"
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", path, "1.1", 200
    )
    [record] = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert isinstance(record.args, tuple) and len(record.args) == 5
    line = AccessFormatter(fmt="%(request_line)s %(status_code)s", use_colors=False).format(record)
    assert line == "POST /v1/channels/messenger/webhook?api_key=*** HTTP/1.1 200 OK"


# -- error messages
# -------------------------------------------------------------------------------------------


def test_a_failing_context_provider_logs_its_error_without_the_token(stub, caplog):
    stub.get_status = 500
    provider = HttpOrderStatusProvider(
        f"http://127.0.0.1:{stub.port}/orders/{{order_number}}?api_key={API_KEY}"
    )
    try:
        assert provider.provide("Where is my order NW-48213?", "en") == []
    finally:
        provider.close()
    failures = [r for r in caplog.records if r.getMessage() == "order-status provider failed"]
    assert failures and "api_key=***" in failures[0].__dict__["error"]
    assert _secrets_in(_everything_logged(caplog)) == []


def test_error_responses_never_carry_a_credential():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise ServiceUnavailable(
            f"upstream http://svc:{PASSWORD}@10.0.0.5/api failed", details={"url": f"/x?token={API_KEY}"}
        )

    response = TestClient(app).get("/boom")
    assert response.status_code == 503
    assert _secrets_in(response.text) == []
    assert response.json()["error"]["message"] == "upstream http://svc:***@10.0.0.5/api failed"


def test_an_unreachable_database_is_reported_without_its_password():
    db = Database(f"postgresql+psycopg://replydesk:{PASSWORD}@127.0.0.1:1/replydesk?connect_timeout=2")
    try:
        health = db.health()
    finally:
        db.dispose()
    assert health["status"] == "unavailable"
    assert health["detail"]["url"].startswith("postgresql+psycopg://replydesk:***@127.0.0.1:1/")
    assert _secrets_in(json.dumps(health)) == []


# -- unsigned and unverified webhooks: warned at start and in /health
# ---------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "codes"),
    [
        ({"webhook_url": "https://helpdesk.example/hooks"}, ["outbound_webhooks_unsigned"]),
        ({"webhook_url": "https://helpdesk.example/hooks", "webhook_secret": "whsec_1"}, []),
        (
            {"chatwoot_base_url": "https://chat.example", "chatwoot_api_token": "cw"},
            ["chatwoot_webhooks_unverified"],
        ),
        ({"chatwoot_api_token": "cw", "chatwoot_webhook_secret": "cws"}, []),
        ({}, []),  # nothing configured: nothing to sign or verify
    ],
)
def test_a_webhook_without_its_secret_is_a_warning(tmp_path, overrides, codes):
    assert [w["code"] for w in Container(_settings(tmp_path, **overrides)).warnings()] == codes


def test_unsigned_webhooks_are_warned_at_start_and_listed_in_health_without_failing_it(tmp_path, caplog):
    settings = _settings(
        tmp_path, webhook_url="https://helpdesk.example/hooks", chatwoot_base_url="https://c.example"
    )
    caplog.set_level(logging.WARNING, logger="replydesk.config")
    with TestClient(create_app(settings, warm=False)) as client:
        health = client.get("/health")
    started = [r.__dict__.get("warning") for r in caplog.records if r.name == "replydesk.config"]
    assert started == ["outbound_webhooks_unsigned", "chatwoot_webhooks_unverified"]
    assert health.status_code == 200
    listed = health.json()["warnings"]
    assert [w["code"] for w in listed] == started
    assert "REPLYDESK_WEBHOOK_SECRET" in listed[0]["message"]
    components = health.json()["components"]
    expected = "ok" if all(c["status"] in {"ok", "not_loaded"} for c in components.values()) else "degraded"
    assert health.json()["status"] == expected  # warnings alone never degrade the status


@pytest.mark.slow  # loads the models (~10 s)
def test_the_running_service_shows_and_logs_no_llm_credential(tmp_path, stub, caplog):
    """End to end: the real app drafts through the LLM stub, then /health describes it."""
    settings = _settings(
        tmp_path, llm_base_url=f"http://bot:{PASSWORD}@127.0.0.1:{stub.port}/v1", llm_api_key=API_KEY
    )
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    caplog.set_level(logging.DEBUG)
    try:
        app = create_app(settings, warm=False)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {_admin_key(app)}"
            drafts = client.post(
                "/v1/drafts", json={"text": "Where is my order NW-48213?", "locale": "en-GB"}
            )
            health = client.get("/health")
    finally:
        logging.setLogRecordFactory(previous)
    assert drafts.status_code == 200, drafts.text
    assert stub.requests, "the LLM stub was never called"
    llm = health.json()["components"]["llm"]
    assert llm["detail"]["base_url"] == f"http://bot:***@127.0.0.1:{stub.port}/v1"
    assert _secrets_in(health.text) == []
    assert _secrets_in(_everything_logged(caplog)) == []


def _admin_key(app: FastAPI) -> str:
    from service.auth.models import ApiKeyCreate

    created = app.state.container.keys.create(
        ApiKeyCreate(name="secrets-admin", role="admin", rate_limit="100000/minute")
    )
    return created.key
