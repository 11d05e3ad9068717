"""SIGKILL a real server mid-burst, restart it on the same database: within 60 s nothing is stranded.

`replydesk serve` runs as a subprocess on 127.0.0.1 with a SQLite file, the background worker on and, as its
LLM, a local stub that takes 0.8 s and then answers 503 (drafts fall back to templates). The slow stub keeps
every pipeline run open long enough that a kill mid-burst always catches messages that are stored (and
acknowledged) but have no suggestions yet. Threads ingest messages (one conversation each) and approve the
first suggestion of each; the server is killed with SIGKILL, restarted, and the requests that got no answer
are retried as a helpdesk would. Then, polling for at most 60 s:

* every acknowledged (2xx) ingest is stored;
* no message is left `pending` without its suggestions, and no message has a suggestion twice;
* no suggestion is left approved without its outbound message, every acknowledged approval is sent, and no
  suggestion has two outbound messages.

The counts are printed (`-s`) for the README (§ Crash recovery).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.load import (
    LOOPBACK,
    START_TIMEOUT_S,
    ServerPaths,
    free_port,
    stop_process,
    wait_for_health,
)
from bench.stub_llm import StubHandler, StubServer
from service.settings import REPO_ROOT

pytestmark = pytest.mark.slow  # two real server start-ups and a burst: `make test` only

RECOVERY_BUDGET_S = 60.0
LLM_DELAY_S = 0.8
INGEST_THREADS = 6
APPROVE_THREADS = 2
KILL_AFTER_ACKED = 24  # acknowledged ingests before the kill...
KILL_AFTER_APPROVED = 4  # ...and acknowledged approvals


class _SlowFailingLLM(StubHandler):
    """An OpenAI-compatible endpoint that is slow and then unavailable: every call takes LLM_DELAY_S and
    answers 503, so drafting falls back to templates after a long pipeline run."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        type(self).calls += 1
        self.read_body()
        time.sleep(LLM_DELAY_S)
        # a client that hung up (the server that asked was killed) is ignored
        self.send_json(503, {"error": {"message": "overloaded", "type": "server_error"}})


@dataclass
class LiveServer(ServerPaths):
    """`replydesk serve` in a subprocess on its own data directory, started and killed on demand."""

    root: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    api_key: str = ""

    def _exe(self) -> str:
        return str(Path(sys.executable).with_name("replydesk"))

    def create_key(self) -> None:
        done = subprocess.run(
            [
                self._exe(),
                "keys",
                "create",
                "--role",
                "admin",
                "--name",
                "kill",
                "--rate-limit",
                "1000000/minute",
            ],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=True,
        )
        self.api_key = done.stdout.strip().splitlines()[-1]

    def start(self) -> float:
        """Start and wait for /health; seconds it took."""
        t0 = time.monotonic()
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [self._exe(), "serve", "--host", LOOPBACK, "--port", str(self.port)],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_health(self.process, self.base_url, self.root / "server.log", require_ok=False, poll_s=0.2)
        return time.monotonic() - t0

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def llm_stub() -> Iterator[str]:
    server = StubServer(_SlowFailingLLM).start()
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def live(tmp_path, llm_stub) -> Iterator[LiveServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLYDESK_")}
    env.update(
        {
            "REPLYDESK_DATA_DIR": str(tmp_path / "data"),
            "REPLYDESK_CACHE_DIR": str(REPO_ROOT / "data" / "cache"),  # shared model caches, as the tests use
            "REPLYDESK_LOG_LEVEL": "WARNING",
            "REPLYDESK_LLM_BASE_URL": llm_stub,
            "REPLYDESK_LLM_API_KEY": "stub",
            "REPLYDESK_WORKERS_ENABLED": "true",
            "REPLYDESK_WORKER_INTERVAL_S": "0.5",
            "REPLYDESK_PIPELINE_STALE_S": "5",
            "REPLYDESK_PIPELINE_RECOVERY_INTERVAL_S": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    server = LiveServer(root=tmp_path, env=env)
    server.create_key()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Burst:
    """What the helpdesk and the agents were told before the kill."""

    nonce: str
    acked_ingests: set[str] = field(default_factory=set)  # idempotency keys answered 2xx
    unanswered_ingests: set[str] = field(default_factory=set)  # sent, no answer (in flight at the kill)
    acked_approvals: set[int] = field(default_factory=set)  # suggestion ids answered 200
    unanswered_approvals: set[int] = field(default_factory=set)
    first_suggestions: list[int] = field(default_factory=list)  # rank-1 suggestion of each acked ingest
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ingest_body(nonce: str, key: str) -> dict[str, Any]:
    return {
        "channel": "whatsapp",
        "conversation_external_id": f"kill-{key}",  # one conversation each: no approval supersedes another
        "customer": {"id": f"cust-{key}", "locale": "en-GB"},
        "text": f"Hi, my parcel for order A{zlib.crc32(key.encode()) % 90000 + 10000} has not arrived yet "
        f"(ref {key})",
        "sent_at": "2026-01-05T09:00:00Z",
        "idempotency_key": key,
    }


def _ingester(server: LiveServer, burst: Burst, worker: int) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        i = 0
        while not burst.stop.is_set():
            key = f"{burst.nonce}-{worker}-{i}"
            i += 1
            with burst.lock:
                burst.unanswered_ingests.add(key)
            try:
                r = http.post("/v1/messages", json=_ingest_body(burst.nonce, key))
            except httpx.TransportError:
                return  # the server is gone
            if r.status_code in (200, 201):
                with burst.lock:
                    burst.unanswered_ingests.discard(key)
                    burst.acked_ingests.add(key)
                    sugs = r.json()["suggestions"]
                    if sugs:
                        burst.first_suggestions.append(sugs[0]["id"])


def _approver(server: LiveServer, burst: Burst, worker: int) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        seen = 0
        while not burst.stop.is_set():
            with burst.lock:
                todo = [s for s in burst.first_suggestions[seen:] if s % APPROVE_THREADS == worker]
                seen = len(burst.first_suggestions)
            if not todo:
                time.sleep(0.05)
                continue
            for sug in todo:
                with burst.lock:
                    burst.unanswered_approvals.add(sug)
                try:
                    r = http.post(f"/v1/suggestions/{sug}/approve", json={})
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    with burst.lock:
                        burst.unanswered_approvals.discard(sug)
                        burst.acked_approvals.add(sug)


def _db(server: LiveServer) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{server.db_file}?mode=ro", uri=True, timeout=30)


def _one(con: sqlite3.Connection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def _stranded(server: LiveServer) -> dict[str, int]:
    with _db(server) as con:
        return {
            "pending_pipelines": _one(
                con, "select count(*) from messages where direction='inbound' and pipeline_status='pending'"
            ),
            "approved_unsent": _one(
                con, "select count(*) from suggestions where status in ('approved','edited')"
            ),
        }


def _metric(text: str, sample: str) -> float:
    """The value of one Prometheus sample (0 when the counter has no sample yet)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_after_a_sigkill_mid_burst_and_a_restart_nothing_is_stranded(live):
    live.start()
    burst = Burst(nonce=uuid.uuid4().hex[:8])
    threads = [
        threading.Thread(target=_ingester, args=(live, burst, w), daemon=True) for w in range(INGEST_THREADS)
    ] + [
        threading.Thread(target=_approver, args=(live, burst, w), daemon=True) for w in range(APPROVE_THREADS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with burst.lock:
            if (
                len(burst.acked_ingests) >= KILL_AFTER_ACKED
                and len(burst.acked_approvals) >= KILL_AFTER_APPROVED
            ):
                break
        time.sleep(0.05)
    live.kill()  # SIGKILL mid-burst: requests in flight get no answer
    burst.stop.set()
    for t in threads:
        t.join(timeout=35)
    at_kill = _stranded(live)
    assert at_kill["pending_pipelines"] > 0, "the kill stranded no pipeline: the test proved nothing"

    restart_s = live.start()
    t_ready = time.monotonic()
    # First the worker alone: nobody retries anything until nothing is stranded (or the budget is spent).
    while time.monotonic() - t_ready < RECOVERY_BUDGET_S and any(_stranded(live).values()):
        time.sleep(0.5)
    recovered_s = time.monotonic() - t_ready
    left = _stranded(live)
    headers = {"Authorization": f"Bearer {live.api_key}"}
    with httpx.Client(base_url=live.base_url, headers=headers, timeout=60) as http:
        worker_reruns = _metric(
            http.get("/metrics").text, 'replydesk_pipeline_recoveries_total{outcome="rerun"}'
        )
        # Then the helpdesk retries the ingests that got no answer, an agent the approvals that got none.
        retried_ingests = [
            http.post("/v1/messages", json=_ingest_body(burst.nonce, k))
            for k in sorted(burst.unanswered_ingests)
        ]
        retried_approvals = [
            http.post(f"/v1/suggestions/{s}/approve", json={}).status_code
            for s in sorted(burst.unanswered_approvals)
        ]
    assert all(r.status_code in (200, 201) for r in retried_ingests), [r.text for r in retried_ingests]
    assert all(r.json()["pipeline"]["status"] == "done" and r.json()["suggestions"] for r in retried_ingests)
    assert set(retried_approvals) <= {200}, retried_approvals

    with _db(live) as con:
        stored = {
            row[0] for row in con.execute("select idempotency_key from messages where direction='inbound'")
        }
        done_without_suggestions = _one(
            con,
            "select count(*) from messages m where m.direction='inbound' and m.pipeline_status='done' and "
            "not exists (select 1 from suggestions s where s.message_id = m.id)",
        )
        doubled_suggestions = _one(
            con,
            "select count(*) from (select message_id, rank from suggestions group by message_id, rank "
            "having count(*) > 1)",
        )
        doubled_outbound = _one(
            con,
            "select count(*) from (select suggestion_id from messages where direction='outbound' and "
            "suggestion_id is not null group by suggestion_id having count(*) > 1)",
        )
        sent_without_message = _one(
            con,
            "select count(*) from suggestions s where s.status='sent' and not exists (select 1 from messages "
            "m where m.id = s.outbound_message_id and m.direction='outbound' and m.suggestion_id = s.id)",
        )
        sent = {row[0] for row in con.execute("select id from suggestions where status='sent'")}
        rerun = _one(con, "select count(*) from messages where direction='inbound' and pipeline_attempts > 1")
        failed = _one(
            con, "select count(*) from messages where direction='inbound' and pipeline_status='failed'"
        )
        inbound = _one(con, "select count(*) from messages where direction='inbound'")

    codes = [r.status_code for r in retried_ingests]
    print(
        f"\nkill test: acknowledged ingests {len(burst.acked_ingests)}, unanswered at the kill "
        f"{len(burst.unanswered_ingests)} (retried after the recovery: {codes}); stored inbound {inbound}; "
        f"pipelines stranded at the kill {at_kill['pending_pipelines']}, re-run by the worker "
        f"{worker_reruns:g} (messages run more than once {rerun}), failed {failed}; acknowledged approvals "
        f"{len(burst.acked_approvals)}, unanswered {len(burst.unanswered_approvals)} (retried: "
        f"{retried_approvals}), approved-unsent at the kill {at_kill['approved_unsent']}; sent suggestions "
        f"{len(sent)}; LLM stub calls {_SlowFailingLLM.calls}; restart {restart_s:.1f} s, nothing stranded "
        f"{recovered_s:.1f} s after the restart"
    )
    assert burst.acked_ingests <= stored
    assert left == {"pending_pipelines": 0, "approved_unsent": 0}
    assert done_without_suggestions == 0 and doubled_suggestions == 0
    assert doubled_outbound == 0 and sent_without_message == 0
    assert burst.acked_approvals | burst.unanswered_approvals <= sent
    assert failed == 0
    assert worker_reruns == at_kill["pending_pipelines"]  # the worker, not the retries, recovered them
