"""`replydesk worker`: the background loops as a process of their own, beside API-only replicas.

The API here is an app with `workers_enabled=false` (an API replica); the worker is a real `replydesk worker`
subprocess on the same database, started with REPLYDESK_WORKERS_ENABLED=false in its environment too (the
deployment sets it for the API replicas; the worker command ignores it). A message the API queued is run
through its pipeline by the worker, and the event that produces is delivered, signed, to a helpdesk
stand-in on 127.0.0.1. `/health` of the API replica says `workers: degraded` (with what to do) while no
worker runs and `ok` while one does; SIGTERM and SIGINT stop the worker promptly with exit status 0, and a
worker that stops cleanly is gone from /health at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api import create_app
from service.clock import ManualClock
from service.settings import REPO_ROOT, Settings
from service.workflow.models import MessageCreate
from tests.workflow_harness import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.slow  # the worker process loads the models (~20 s)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
EVENTS = ["suggestions.created"]  # informational: delivered because the webhook subscribes to it


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    # the worker signs with the real time: the receiver checks the signature's age against it
    stand_in = WebhookReceiver(ManualClock(datetime.now(UTC))).start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def env(tmp_path: Path, receiver: WebhookReceiver) -> dict[str, str]:
    """One deployment's environment: the API replicas' and the worker's (REPLYDESK_WORKERS_ENABLED=false is
    for the API; `replydesk worker` runs its loops anyway)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("REPLYDESK_")}
    base.update(
        {
            "REPLYDESK_DATA_DIR": str(tmp_path / "data"),
            "REPLYDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'replydesk.db'}",
            "REPLYDESK_CACHE_DIR": str(REPO_ROOT / "data" / "cache"),
            "REPLYDESK_LLM_BASE_URL": "",
            "REPLYDESK_LOG_LEVEL": "INFO",
            "REPLYDESK_WORKERS_ENABLED": "false",
            "REPLYDESK_WORKER_INTERVAL_S": "0.2",
            "REPLYDESK_PIPELINE_RECOVERY_INTERVAL_S": "0.5",
            "REPLYDESK_WORKER_STALE_S": "5",
            "REPLYDESK_WEBHOOK_URL": receiver.url,
            "REPLYDESK_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "REPLYDESK_WEBHOOK_EVENTS": json.dumps(EVENTS),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return base


@pytest.fixture
def api_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """An API-only replica with the deployment's environment."""
    for name, value in env.items():
        if name.startswith("REPLYDESK_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert not settings.workers_enabled
    return create_app(settings, warm=False)


@pytest.fixture
def api(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as client:
        yield client


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("replydesk")), "worker"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for(what: str, check: Any, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            pytest.fail(
                f"the worker exited ({process.returncode}) before {what}: {log_path.read_text()[-3000:]}"
            )
        time.sleep(0.2)
    pytest.fail(f"no {what} within {START_TIMEOUT_S} s: {log_path.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[int, float]:
    """Send `sig`; the exit status and the seconds the worker took to exit."""
    t0 = time.monotonic()
    process.send_signal(sig)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"the worker did not exit within {STOP_TIMEOUT_S} s of {sig.name}")
    return code, time.monotonic() - t0


def workers(api: TestClient) -> dict[str, Any]:
    health = api.get("/health")
    assert health.status_code == 200
    return health.json()["components"]["workers"]


def log_lines(log_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


def test_the_worker_runs_queued_pipelines_delivers_their_events_and_stops_on_sigterm(
    api: TestClient, api_app: FastAPI, env: dict[str, str], receiver: WebhookReceiver, tmp_path: Path
):
    alone = workers(api)
    assert alone["status"] == "degraded"
    assert "replydesk worker" in alone["detail"]["message"]
    assert "REPLYDESK_WORKERS_ENABLED=true" in alone["detail"]["message"]
    assert api.get("/health").json()["status"] == "degraded"

    queued = api_app.state.container.workflow.enqueue(
        MessageCreate.model_validate(
            {
                "channel": "whatsapp",
                "conversation_external_id": "wa:34600111222",
                "customer": {"id": "34600111222", "name": "Ana", "locale": "es-ES"},
                "text": "Hola, mi pedido NW-48213 no ha llegado todavía",
                "sent_at": datetime.now(UTC).isoformat(),
                "idempotency_key": "wamid.worker-test-1",
            }
        )
    )
    log_path = tmp_path / "worker.log"
    process = start_worker(env, log_path)
    try:
        wait_for(
            "delivery of the queued message's suggestions",
            lambda: any(
                r.body["data"].get("message_id") == queued.message_id
                for r in receiver.of_type("suggestions.created")
            ),
            process,
            log_path,
        )
        running = workers(api)
        assert running["status"] == "ok", running
        assert running["detail"]["by_kind"] == {"worker": 1}
        assert api.get("/health").json()["components"]["workers"]["status"] == "ok"
    finally:
        code, took = stop(process, signal.SIGTERM)
    assert code == 0, log_path.read_text()[-3000:]
    assert took < STOP_TIMEOUT_S
    messages = [line["msg"] for line in log_lines(log_path) if line.get("logger") == "replydesk.worker"]
    assert messages[:1] == ["worker started"] and messages[-2:] == ["worker stopping", "worker stopped"]
    assert workers(api)["status"] == "degraded"  # a clean exit removes its heartbeat at once
    assert receiver.rejected == []


def test_sigint_stops_the_worker_cleanly_too(api: TestClient, env: dict[str, str], tmp_path: Path):
    log_path = tmp_path / "worker.log"
    process = start_worker(env, log_path)
    try:
        wait_for("heartbeat", lambda: workers(api)["status"] == "ok", process, log_path)
    finally:
        code, _ = stop(process, signal.SIGINT)
    assert code == 0, log_path.read_text()[-3000:]
    assert workers(api)["status"] == "degraded"
