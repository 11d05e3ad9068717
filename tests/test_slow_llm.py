"""A slow LLM must not starve other requests (issue #12). A real uvicorn server (in a thread, with its real
thread pool of 40 tokens) whose LLM is a local stand-in (127.0.0.1 only) that holds every call until the test
releases it: while more LLM-bound ingests wait on it than that pool has tokens, `/health` and `GET /v1/queue`
still answer at once, every ingest still gets its suggestions, and requests beyond
`REPLYDESK_PIPELINE_QUEUE_LIMIT` are refused with 503 + Retry-After. The 8 s bound is a correctness bound,
not a benchmark: a starved route waits until an LLM call ends, which here never happens before the release
(the stand-in holds every call up to 60 s), so any answer well inside the hold proves the route was not
starved, even on a loaded shared machine (CI once measured 3.15 s for `/v1/queue` while 60 ingests were
being stored). The latency figures come from `python -m bench.run --only slow-llm`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bench.load import free_port
from bench.slow_llm import SlowLLM
from service.api import create_app
from tests.robustness_harness import admin_key, isolated_settings

pytestmark = pytest.mark.slow

LLM_HOLD_MAX_S = 60.0  # the stand-in answers on release, or after this at the latest
REQUEST_POOL_TOKENS = 40  # anyio's default thread limiter, shared by every sync route and dependency
INGESTS = 60
ANSWER_WITHIN_S = 8.0  # far below LLM_HOLD_MAX_S: a starved route cannot answer before the release


@dataclass
class LiveServer:
    base_url: str
    headers: dict[str, str]
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(root: Path, llm: SlowLLM, **overrides: Any) -> LiveServer:
    settings = isolated_settings(root, llm_base_url=llm.base_url, llm_timeout_s=30.0, **overrides)
    app = create_app(settings)
    app.state.container.kb.reindex()
    headers = {"Authorization": f"Bearer {admin_key(app)}"}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", headers, server, thread)


@pytest.fixture
def llm() -> Iterator[SlowLLM]:
    stub = SlowLLM(delay_s=LLM_HOLD_MAX_S, held=True).start()
    yield stub
    stub.stop()


def _ingest(live: LiveServer, i: int) -> httpx.Response:
    body = {
        "channel": "whatsapp",
        "conversation_external_id": f"slow-llm-{i}",
        "customer": {"id": f"slow-llm-{i}", "locale": "en-GB"},
        "text": f"Hi, where is my order A{20000 + i}? It was due on Monday.",
        "sent_at": "2026-01-05T09:00:00Z",
        "idempotency_key": f"slow-llm-{i}",
    }
    return httpx.post(f"{live.base_url}/v1/messages", json=body, headers=live.headers, timeout=120)


def _timed_get(live: LiveServer, path: str) -> tuple[float, int]:
    """Seconds and status; a request still unanswered after 10 s counts as status 0."""
    t0 = time.perf_counter()
    try:
        status = httpx.get(f"{live.base_url}{path}", headers=live.headers, timeout=10).status_code
    except httpx.TimeoutException:
        status = 0
    return time.perf_counter() - t0, status


def test_health_and_queue_answer_at_once_while_more_ingests_wait_on_the_llm_than_the_request_pool_has_threads(
    tmp_path, llm
):
    live = serve(tmp_path, llm)
    try:
        with ThreadPoolExecutor(max_workers=INGESTS) as clients:
            ingests = [clients.submit(_ingest, live, i) for i in range(INGESTS)]
            try:
                # Nearly every token of the shared request pool could now be held by a request waiting on
                # the LLM (a few serve the ingests' own sync dependencies meanwhile).
                assert llm.wait_in_flight(REQUEST_POOL_TOKENS - 4, timeout_s=90), (
                    "ingests never reached the LLM"
                )
                health = _timed_get(live, "/health")
                queue = _timed_get(live, "/v1/queue")
                assert health[1] == 200 and health[0] < ANSWER_WITHIN_S, health
                assert queue[1] == 200 and queue[0] < ANSWER_WITHIN_S, queue
                # All of them wait on the LLM at once: none holds a token of the shared pool.
                assert llm.wait_in_flight(INGESTS, timeout_s=90), llm.peak_in_flight
            finally:
                llm.release()
            responses = [f.result() for f in ingests]
        assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
        assert all(r.json()["pipeline"]["status"] == "done" and r.json()["suggestions"] for r in responses)
    finally:
        live.stop()


def test_llm_bound_requests_beyond_the_queue_limit_are_refused_with_503_and_retry_after(tmp_path, llm):
    live = serve(tmp_path, llm, pipeline_concurrency=2, pipeline_queue_limit=2)
    try:

        def triage(i: int) -> httpx.Response:
            return httpx.post(
                f"{live.base_url}/v1/triage",
                json={"text": f"Where is my order A{30000 + i}?", "locale": "en-GB"},
                headers=live.headers,
                timeout=60,
            )

        with ThreadPoolExecutor(max_workers=8) as clients:
            sent = [clients.submit(triage, i) for i in range(8)]
            try:
                # Until the release nothing admitted can finish: 2 run (held by the LLM), 2 wait, 4 refused.
                assert llm.wait_in_flight(2, timeout_s=60)
                deadline = time.monotonic() + 60
                while sum(f.done() for f in sent) < 4 and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert _timed_get(live, "/health")[1] == 200  # the shared pool still serves other routes
            finally:
                llm.release()
            responses = [f.result() for f in sent]
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 503]
        assert len(ok) == 4 and len(refused) == 4, [r.status_code for r in responses]
        for r in refused:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "overloaded"
        assert all(r.json()["drafts"]["llm_outcome"] == "ok" for r in ok)
        assert llm.calls == 4  # refused requests never reached the LLM
    finally:
        live.stop()
