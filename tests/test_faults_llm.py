"""Fault injection on the LLM: a local OpenAI-compatible stand-in (127.0.0.1 only) that can be down, slow,
answer garbage, answer the wrong JSON, or fail with HTTP 500. Whatever it does, `POST /v1/drafts` and `POST
/v1/messages` answer 200/201 with template drafts, say why (`llm_outcome`), and /health shows the LLM as
degraded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from bench.stub_llm import StubHandler, StubServer, chat_completion
from tests.robustness_harness import LiveApp, isolated_settings, start, stop

TIMEOUT_S = 0.5
GOOD_REPLY = {
    "language": "en",
    "drafts": [
        "Hi, thanks for your message. You can track your order under Orders in "
        "the Northwind app, then tap Track package."
    ],
    "cited_article_ids": ["track-your-order"],
    "needs_human": False,
    "missing_info": [],
}


class FakeLLM:
    """Answers /v1/chat/completions according to `mode`: ok | slow | garbage | wrong_schema | http500."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        fake = self

        class Handler(StubHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.read_body()
                fake.calls += 1
                if fake.mode == "slow":
                    time.sleep(TIMEOUT_S * 4)
                if fake.mode == "http500":
                    self.send_json(500, b'{"error": {"message": "model crashed"}}')
                    return
                content = {
                    "ok": json.dumps(GOOD_REPLY),
                    "slow": json.dumps(GOOD_REPLY),
                    "garbage": "Sure! Here are some drafts: <<<not json>>>",
                    "wrong_schema": json.dumps({"answer": 42, "drafts": "not a list"}),
                }[fake.mode]
                self.send_json(200, chat_completion(content, model="fake"))

        self.server = StubServer(Handler).start()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, fake_llm) -> Iterator[LiveApp]:
    app = start(
        isolated_settings(
            tmp_path_factory.mktemp("faults-llm"),
            llm_base_url=fake_llm.base_url,
            llm_timeout_s=TIMEOUT_S,
            llm_reask_attempts=1,
        )
    )
    yield app
    stop(app)


def _draft(live: LiveApp) -> dict:
    r = live.client.post(
        "/v1/drafts", json={"text": "Hi, where is my order A12345? It hasn't arrived.", "locale": "en-GB"}
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_a_healthy_llm_writes_the_drafts(live, fake_llm):
    fake_llm.mode = "ok"
    body = _draft(live)
    assert body["llm_outcome"] == "ok"
    assert {d["generator"] for d in body["drafts"]} == {"llm"}


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("slow", "fallback:timeout"),
        ("garbage", "fallback:invalid_output"),
        ("wrong_schema", "fallback:invalid_output"),
        ("http500", "fallback:http_error"),
    ],
)
def test_a_failing_llm_falls_back_to_template_drafts_and_says_why(live, fake_llm, mode, outcome):
    fake_llm.mode = mode
    body = _draft(live)
    assert body["llm_outcome"] == outcome
    assert body["drafts"] and {d["generator"] for d in body["drafts"]} == {"template"}
    assert all(d["text"].strip() for d in body["drafts"])


def test_garbage_is_re_asked_once_then_given_up(live, fake_llm):
    fake_llm.mode = "garbage"
    before = fake_llm.calls
    _draft(live)
    assert fake_llm.calls - before == 2  # the first ask and one re-ask


def test_health_reports_the_llm_degraded_after_a_transport_failure(live, fake_llm):
    fake_llm.mode = "http500"
    _draft(live)
    llm = live.client.get("/health").json()["components"]["llm"]
    assert llm["status"] == "degraded"
    assert llm["detail"]["last_outcome"] == "http_error"


def test_ingest_still_stores_template_suggestions_when_the_llm_is_slow(live, fake_llm):
    fake_llm.mode = "slow"
    r = live.client.post(
        "/v1/messages",
        json={
            "channel": "whatsapp",
            "conversation_external_id": "faults-llm-slow",
            "customer": {"id": "5511"},
            "text": "Hi, where is my order A12345?",
            "sent_at": "2026-01-05T09:00:00Z",
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["pipeline"]["status"] == "done"
    assert body["triage"]["intent"]["name"] == "order_status"


def test_an_llm_that_is_down_falls_back_to_templates(tmp_path_factory):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = start(
        isolated_settings(
            tmp_path_factory.mktemp("faults-llm-down"),
            llm_base_url=f"http://127.0.0.1:{port}/v1",
            llm_timeout_s=TIMEOUT_S,
        )
    )
    try:
        body = _draft(app)
        assert body["llm_outcome"] == "fallback:transport_error"
        assert {d["generator"] for d in body["drafts"]} == {"template"}
        assert app.client.get("/health").json()["components"]["llm"]["status"] == "degraded"
    finally:
        stop(app)
