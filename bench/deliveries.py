"""Background work that keeps up (issue #16, item 1): how fast the outbox delivers, one delivery at a time
(the behaviour before, by configuration: `REPLYDESK_DELIVERY_CONCURRENCY=1`,
`REPLYDESK_DELIVERY_PER_RECEIVER=1`) and with the defaults, side by side in one run; and how long an approved
reply takes to reach the helpdesk under sustained ingest, and where that time goes.

1. Throughput (in-process, SQLite file): `events` outbox rows to one local receiver that answers at once
   (`fast`) and to one that takes 0.3 s per POST (`slow`), drained by the real `WebhookDispatcher` in the
   worker's delivery loop (`pump`, then wait for a committed row or a freed slot). Deliveries/s = rows / time
   from the first claim to the last POST answered.
2. Approved-reply latency under a backlog (end to end, SQLite): two `replydesk serve` subprocesses
   (`bench.load.Server`, their own SQLite files, background loops in-process, no LLM), one per mode, both
   running at once so the machine's load hits both alike. One load phase per rate of `--rates` (the same
   servers; a phase starts once the previous phase's outbox has drained): each server gets `rate`
   `POST /v1/messages` per second, open loop (unique texts, one conversation each, 16 client threads), with
   `REPLYDESK_WEBHOOK_EVENTS=["*"]`, so every `message.received` and `suggestions.created` goes to a local
   helpdesk receiver that takes `helpdesk_delay_s` per POST; every `approve_every_s` an agent of its own
   approves one of the drafts. Latency = from sending the approval to the receiver having answered the
   `message.outbound` (same machine clock), split into: the approval request (to the server's decision time,
   the event's `created_at`, then to the answer), the approval's answer to the POST arriving at the receiver
   (wake-up, wait for a slot, claim, the attempt's read), and the receiver's own time. Whether a rate is
   sustained: ingest latency from the moment the request was due (`ingest_open_loop_ms`, client queueing
   included) stays bounded and every ingest due is answered during the load; at a rate the servers cannot
   sustain it grows with the run. Also: informational events' lag and the outbox backlog when the load stops.
   Priority cannot be switched off by configuration: the "before" mode claims replies first too, so its reply
   latency shows concurrency's share only; the issue's figure without priority was 44.9 s.
3. The same on PostgreSQL replicas (`--topology-rates`, scripts/topology.py): per column one API
   (`REPLYDESK_WORKERS_ENABLED=false`: it ingests and approves) and one `replydesk worker` (it delivers), so
   the approval is committed in another process than the one that delivers it. `notify`: the worker is woken
   by `NOTIFY replydesk_deliveries` (migration 0009); `poll_only`: its listener is switched off (a
   `sitecustomize` on that column's PYTHONPATH), so it finds the row at its next poll (`worker_interval_s`),
   as every worker did before. Both columns run at once.

`python -m bench.deliveries` (about 3 minutes on 2 cores, more per extra rate) writes
`bench/results/deliveries-<UTC time>.json`; `--postgres URL` runs part 1 on PostgreSQL too (a throw-away
database on that server); `--fast-events 0 --slow-events 0` skips part 1, `--rates ""` part 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import write_result
from bench.load import Server, message
from bench.stub_llm import LOOPBACK, StubHandler, StubServer
from service.clock import SystemClock
from service.db import Database
from service.settings import REPO_ROOT, Settings
from service.workflow.events import EventLog
from service.workflow.webhooks import WebhookDispatcher

DEFAULT_CONCURRENCY = int(Settings.model_fields["delivery_concurrency"].default)
DEFAULT_PER_RECEIVER = int(Settings.model_fields["delivery_per_receiver"].default)
# 6/s per server saturates 2 cores running both servers (ingest queues in the client and the informational
# backlog grows); 3/s was sustained there (every ingest answered in time, open-loop p95 ~0.5 s)
DEFAULT_RATES = (6.0, 3.0)
MODES = {"one_at_a_time": (1, 1), "default": (DEFAULT_CONCURRENCY, DEFAULT_PER_RECEIVER)}
SECRET = "whsec_bench_deliveries"


@dataclass
class Post:
    """One POST the receiver answered: the signed headers' event and delivery ids, the event type, when it
    arrived (time.time()), what it answered, and the envelope."""

    event_id: str
    delivery_id: str
    type: str
    at: float
    status: int
    body: dict[str, Any]
    arrived: float = 0.0  # when the request had been read, before any hold or delay (time.time())
    others_in_flight: int = 0  # requests the receiver was already holding when this one arrived


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 (any free port): records every POST and the peak of requests in
    flight at once. Answers 200 (a `message.outbound` with a `channel_message_id`) after `delay_s`; 500 to the
    first `fail_first` requests; with `gate`, holds each request until `gate` of them are in flight at once;
    with `held`, until `release()`. Nothing is held longer than `max_hold_s`. Also used by
    tests/test_delivery_engine.py."""

    delay_s: float = 0.0
    fail_first: int = 0
    gate: int = 0
    held: bool = False
    max_hold_s: float = 10.0
    posts: list[Post] = field(default_factory=list)
    attempts: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    gate_opened: bool = False  # `gate` requests were in flight at once (not let go by max_hold_s)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: StubServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"
        return f"http://{LOOPBACK}:{self._server.port}/hooks/replydesk"

    def start(self) -> Receiver:
        receiver = self

        class Handler(StubHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real helpdesk would

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                raw = self.read_body()
                arrived = time.time()
                status, others = receiver._hold()
                try:
                    body = json.loads(raw)
                    answer: dict[str, Any] = {"ok": status == 200}
                    if status == 200 and body.get("type") == "message.outbound":
                        answer["channel_message_id"] = f"bench.{body['data']['message']['id']}"
                    with receiver._cond:
                        receiver.posts.append(
                            Post(
                                event_id=self.headers.get("X-ReplyDesk-Event-Id", ""),
                                delivery_id=self.headers.get("X-ReplyDesk-Delivery", ""),
                                type=self.headers.get("X-ReplyDesk-Event", ""),
                                at=time.time(),
                                status=status,
                                body=body,
                                arrived=arrived,
                                others_in_flight=others,
                            )
                        )
                        receiver._cond.notify_all()
                    self.send_json(status, answer)
                finally:
                    with receiver._cond:
                        receiver.in_flight -= 1
                        receiver._cond.notify_all()

        self._server = StubServer(Handler).start()
        return self

    def _hold(self) -> tuple[int, int]:
        """Count the request in, hold it as configured; the status to answer and how many other requests
        were in flight when it arrived."""
        with self._cond:
            self.attempts += 1
            attempt = self.attempts
            others = self.in_flight
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self._cond.notify_all()
            if self.gate:
                if self._cond.wait_for(
                    lambda: self.in_flight >= self.gate or self.gate_opened, self.max_hold_s
                ):
                    self.gate_opened = True
        if self.held:
            self._released.wait(self.max_hold_s)
        if self.delay_s:
            time.sleep(self.delay_s)
        return (500 if attempt <= self.fail_first else 200), others

    def release(self) -> None:
        self.held = False
        self._released.set()

    def delivered(self, type_: str | None = None) -> list[Post]:
        """The POSTs answered 200, oldest first (of one event type, when given)."""
        with self._cond:
            return [p for p in self.posts if p.status == 200 and (type_ is None or p.type == type_)]

    def wait_for(self, count: int, timeout_s: float, type_: str | None = None) -> bool:
        """Wait until `count` POSTs were answered 200; False if that took longer than `timeout_s`."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(1 for p in self.posts if p.status == 200 and type_ in (None, p.type)) >= count,
                timeout_s,
            )

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.stop()


def drive(dispatcher: WebhookDispatcher, done: Callable[[], bool], timeout_s: float) -> None:
    """The worker's delivery loop (service/workflow/worker.py): start what fits, then wait for a committed
    row or a freed slot; until `done()` or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        dispatcher.wake.clear()
        if not dispatcher.pump():
            dispatcher.wake.wait(0.2)


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# -- 1. throughput ---------------------------------------------------------------------------------------


def throughput(
    url: str, *, delay_s: float, events: int, concurrency: int, per_receiver: int
) -> dict[str, Any]:
    """Emit `events` informational events to a receiver taking `delay_s` per POST, then drain them."""
    receiver = Receiver(delay_s=delay_s).start()
    db = Database(url)
    clock = SystemClock()
    try:
        db.migrate()
        log = EventLog(db, receiver.url, ["*"])
        with db.session() as s:
            for i in range(events):
                log.emit(s, "message.received", {"message": {"id": i, "text": f"bench {i}"}}, now=clock.now())
        dispatcher = WebhookDispatcher(
            db,
            clock,
            secret=SECRET,
            max_attempts=5,
            backoff_s=1.0,
            backoff_max_s=60.0,
            timeout_s=30.0,
            concurrency=concurrency,
            per_receiver=per_receiver,
            wake=log.new_work,
        )
        t0 = time.time()
        drive(dispatcher, lambda: len(receiver.delivered()) >= events, timeout_s=180)
        dispatcher.close()
        posts = receiver.delivered()
        seconds = (max(p.at for p in posts) - t0) if posts else float("inf")
        return {
            "concurrency": concurrency,
            "per_receiver": per_receiver,
            "receiver_delay_s": delay_s,
            "events": events,
            "delivered": len(posts),
            "seconds": round(seconds, 2),
            "deliveries_per_s": round(len(posts) / seconds, 1) if posts else 0.0,
            "peak_in_flight_at_receiver": receiver.peak_in_flight,
        }
    finally:
        receiver.stop()
        db.dispose()


def throughput_table(
    make_url: Callable[[], str], *, fast_events: int, slow_events: int, log: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for receiver, delay_s, events in (("fast", 0.0, fast_events), ("slow_0.3s", 0.3, slow_events)):
        rows: dict[str, Any] = {}
        for mode, (concurrency, per_receiver) in MODES.items():
            rows[mode] = throughput(
                make_url(), delay_s=delay_s, events=events, concurrency=concurrency, per_receiver=per_receiver
            )
            log(f"  {receiver} receiver, {mode}: {rows[mode]['deliveries_per_s']}/s")
        before, after = rows["one_at_a_time"]["deliveries_per_s"], rows["default"]["deliveries_per_s"]
        rows["ratio_default_vs_one_at_a_time"] = round(after / before, 2) if before else None
        out[receiver] = rows
    return out


def _sqlite_urls(root: Path) -> Callable[[], str]:
    def make() -> str:
        return f"sqlite:///{root / f'outbox-{uuid.uuid4().hex[:8]}.db'}"

    return make


def _postgres_urls(base: str) -> tuple[Callable[[], str], Callable[[], None]]:
    """Throw-away databases on the PostgreSQL at `base` (a role with CREATEDB, e.g. scripts/postgres.sh)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base)
    admin = psycopg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )
    made: list[str] = []

    def make() -> str:
        name = f"replydesk_bench_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return make, drop


# -- 2. approved-reply latency under a backlog ----------------------------------------------------------


@dataclass
class Approval:
    message_id: int
    sent_at: float  # the approval request left
    answered_at: float


@dataclass
class Phase:
    """What one mode's server saw during one load phase (one ingest rate)."""

    rate: float
    ingested: list[dict[str, Any]] = field(default_factory=list)  # suggestions not yet approved
    approvals: list[Approval] = field(default_factory=list)
    ingest_ms: list[float] = field(default_factory=list)  # request sent -> answered (server latency)
    ingest_open_loop_ms: list[float] = field(
        default_factory=list
    )  # scheduled -> answered (with client queue)
    ingests_scheduled: int = 0
    ingests_done_during_load: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ModeRun:
    """One configuration under load: the API it drives, its helpdesk receiver and its outbox."""

    name: str
    base_url: str
    api_key: str
    receiver: Receiver
    backlog: Callable[[], dict[str, int]]  # pending outbox rows per priority
    concurrency: int
    per_receiver: int
    phase: Phase = field(default_factory=lambda: Phase(rate=0.0))
    lock: threading.Lock = field(default_factory=threading.Lock)


def _headers(run: ModeRun) -> dict[str, str]:
    return {"Authorization": f"Bearer {run.api_key}"}


def _ingest(run: ModeRun, phase: Phase, client: httpx.Client, i: int, nonce: str, scheduled: float) -> None:
    import random

    text, locale = message(random.Random(i), nonce, i)
    t0 = time.perf_counter()
    try:
        r = client.post(
            f"{run.base_url}/v1/messages",
            headers=_headers(run),
            json={
                "channel": "webchat",
                "conversation_external_id": f"bench-{nonce}-{i}",
                "customer": {"id": f"cust-{nonce}-{i}", "locale": locale},
                "text": text,
                "sent_at": "2026-01-05T09:00:00Z",
            },
        )
    except httpx.HTTPError as exc:
        with run.lock:
            phase.errors.append(f"ingest: {type(exc).__name__}")
        return
    done = time.perf_counter()
    with run.lock:
        phase.ingest_ms.append((done - t0) * 1000)
        phase.ingest_open_loop_ms.append((done - scheduled) * 1000)
        if r.status_code in (200, 201) and r.json().get("suggestions"):
            phase.ingested.append(r.json()["suggestions"][0])
        elif r.status_code not in (200, 201):
            phase.errors.append(f"ingest: HTTP {r.status_code}")


def _approve_next(run: ModeRun, phase: Phase, client: httpx.Client) -> None:
    with run.lock:
        if not phase.ingested:
            return
        suggestion = phase.ingested.pop()
    sent = time.time()
    r = client.post(
        f"{run.base_url}/v1/suggestions/{suggestion['id']}/approve",
        headers=_headers(run),
        json={},
    )
    answered = time.time()
    if r.status_code != 200:
        with run.lock:
            phase.errors.append(f"approve: HTTP {r.status_code}")
        return
    with run.lock:
        phase.approvals.append(Approval(r.json()["message"]["id"], sent, answered))


def _load(
    run: ModeRun, phase: Phase, *, seconds: float, approve_every_s: float, stop: threading.Event
) -> None:
    """Open-loop ingest at `phase.rate`/s on a pool of 16 clients, and one approval every `approve_every_s`
    from an agent of its own (approvals never queue behind ingests in the client)."""
    nonce = uuid.uuid4().hex[:6]
    with (
        httpx.Client(timeout=120) as client,
        httpx.Client(timeout=60) as agent,
        ThreadPoolExecutor(16) as pool,
        ThreadPoolExecutor(2) as agents,
    ):
        t0 = time.perf_counter()
        next_approval = t0 + approve_every_s
        i = 0
        while (now := time.perf_counter()) - t0 < seconds and not stop.is_set():
            if now >= t0 + i / phase.rate:
                pool.submit(_ingest, run, phase, client, i, nonce, t0 + i / phase.rate)
                i += 1
            if now >= next_approval:
                agents.submit(_approve_next, run, phase, agent)
                next_approval += approve_every_s
            time.sleep(0.005)
        phase.ingests_scheduled = i
        with run.lock:
            phase.ingests_done_during_load = len(phase.ingest_ms)


def _outbox_backlog(db_file: Path) -> dict[str, int]:
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute(
            "select priority, count(*) from webhook_deliveries where status = 'pending' group by priority"
        ).fetchall()
    return {f"priority_{p}": n for p, n in rows}


def _p50_p95(values: list[float]) -> dict[str, float | None]:
    return {"p50": _pct(values, 50), "p95": _pct(values, 95)}


def _summary(run: ModeRun, phase: Phase, load_end: float, since: float, per_receiver: int) -> dict[str, Any]:
    outbound = {p.body["data"]["message"]["id"]: p for p in run.receiver.delivered("message.outbound")}
    replied = [(a, outbound[a.message_id]) for a in phase.approvals if a.message_id in outbound]
    from_request = [(p.at - a.sent_at) * 1000 for a, p in replied]
    info = [p for p in run.receiver.delivered() if p.type != "message.outbound" and p.at >= since]
    lag = [(p.at - _epoch(p.body["created_at"])) * 1000 for p in info]
    during = [p for p in run.receiver.delivered() if since <= p.at <= load_end]
    seconds = load_end - since
    return {
        "approvals": len(phase.approvals),
        "replies_delivered": len(replied),
        "reply_latency_ms": {
            **_p50_p95(from_request),
            "max": round(max(from_request), 1) if from_request else None,
        },
        "reply_latency_from_approval_answer_ms": _p50_p95(
            [(p.at - a.answered_at) * 1000 for a, p in replied]
        ),
        # where an approved reply's time goes (same machine clock; the event's created_at is the server's
        # decision time, after the read and the tone check, before the write transaction)
        "reply_breakdown_ms": {
            "approval_request": _p50_p95([(a.answered_at - a.sent_at) * 1000 for a, _ in replied]),
            "request_to_decision": _p50_p95(
                [(_epoch(p.body["created_at"]) - a.sent_at) * 1000 for a, p in replied]
            ),
            "decision_to_answer": _p50_p95(
                [(a.answered_at - _epoch(p.body["created_at"])) * 1000 for a, p in replied]
            ),
            "answer_to_post_arrival": _p50_p95([(p.arrived - a.answered_at) * 1000 for a, p in replied]),
            "helpdesk": _p50_p95([(p.at - p.arrived) * 1000 for _, p in replied]),
        },
        "replies_arriving_with_other_slots_all_busy": sum(
            1 for _, p in replied if p.others_in_flight >= per_receiver - 1
        ),
        # a reply that arrived with every other slot of the receiver busy took the slot of the POST that
        # finished last before it: the time from the approval's answer to that finish is its wait for a slot
        "reply_slot_wait_ms": _p50_p95(_slot_waits(run.receiver.delivered(), replied, per_receiver)),
        "informational_delivered": len(info),
        "informational_lag_ms": _p50_p95(lag),
        "deliveries_during_load": len(during),
        "deliveries_per_s_during_load": round(len(during) / seconds, 1) if seconds > 0 else None,
        "ingests_scheduled": phase.ingests_scheduled,
        "ingests_done_during_load": phase.ingests_done_during_load,
        "ingest_ms": _p50_p95(phase.ingest_ms),
        "ingest_open_loop_ms": {
            **_p50_p95(phase.ingest_open_loop_ms),
            "max": round(max(phase.ingest_open_loop_ms), 1) if phase.ingest_open_loop_ms else None,
        },
        "errors": phase.errors[:20],
    }


def _slot_waits(posts: list[Post], replied: list[tuple[Approval, Post]], per_receiver: int) -> list[float]:
    """Per reply: ms from the approval's answer until the receiver freed the slot the reply then took (0
    when a slot was free, or freed before the answer)."""
    finished = sorted(p.at for p in posts)
    waits = []
    for a, reply in replied:
        before = [at for at in finished if at <= reply.arrived]
        freed = before[-1] if before and reply.others_in_flight >= per_receiver - 1 else a.answered_at
        waits.append(max(0.0, freed - a.answered_at) * 1000)
    return waits


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _drain(runs: list[ModeRun], timeout_s: float) -> float:
    """Wait until no server has a pending outbox row (at most `timeout_s`); the seconds it took."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if not any(run.backlog() for run in runs):
            break
        time.sleep(0.5)
    return round(time.perf_counter() - t0, 1)


def _warm(base_url: str, api_key: str) -> None:
    """One triage and one ingest so lazy components are loaded before measuring (as `Server.warm`)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    httpx.post(
        f"{base_url}/v1/triage", json={"text": "warm up where is my order"}, headers=headers, timeout=300
    ).raise_for_status()
    httpx.post(
        f"{base_url}/v1/messages",
        headers=headers,
        timeout=300,
        json={
            "channel": "webchat",
            "conversation_external_id": f"warm-{uuid.uuid4().hex[:6]}",
            "customer": {"id": "warm", "locale": "en-GB"},
            "text": "warm up: where is my order A12345?",
            "sent_at": "2026-01-05T09:00:00Z",
        },
    ).raise_for_status()


def _webhook_env(receiver: Receiver, concurrency: int, per_receiver: int) -> dict[str, str]:
    return {
        "REPLYDESK_WEBHOOK_URL": receiver.url,
        "REPLYDESK_WEBHOOK_SECRET": SECRET,
        "REPLYDESK_WEBHOOK_EVENTS": '["*"]',
        "REPLYDESK_DELIVERY_CONCURRENCY": str(concurrency),
        "REPLYDESK_DELIVERY_PER_RECEIVER": str(per_receiver),
    }


def _phases(
    runs: list[ModeRun],
    *,
    seconds: float,
    rates: list[float],
    approve_every_s: float,
    drain_s: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One load phase per rate, every run loaded at once; each phase starts once the previous phase's outbox
    has drained (at most `drain_s`)."""
    phases = []
    for rate in rates:
        drained = _drain(runs, drain_s)
        log(f"  {rate:g} ingests/s per server for {seconds:.0f} s (outbox drained in {drained} s)")
        for run in runs:
            run.phase = Phase(rate=rate)
        since = time.time()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_load,
                args=(run, run.phase),
                kwargs={"seconds": seconds, "approve_every_s": approve_every_s, "stop": stop},
            )
            for run in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_end = time.time()
        load_average = [round(x, 2) for x in os.getloadavg()]
        backlog = {run.name: run.backlog() for run in runs}
        # the approved replies still on their way (none should be, with priority)
        for run in runs:
            run.receiver.wait_for(len(run.phase.approvals), 20, type_="message.outbound")
        modes = {}
        for run in runs:
            m = modes[run.name] = _summary(run, run.phase, load_end, since, run.per_receiver)
            m["outbox_pending_at_load_end"] = backlog[run.name]
            m["concurrency"], m["per_receiver"] = run.concurrency, run.per_receiver
            reply, ingest = m["reply_latency_ms"], m["ingest_open_loop_ms"]
            log(
                f"    {run.name}: reply p50/p95 {reply['p50']}/{reply['p95']} ms, "
                f"ingest open-loop p95 {ingest['p95']} ms, backlog {backlog[run.name]}"
            )
        phases.append(
            {
                "ingest_rate_per_s": rate,
                "outbox_drained_before_s": drained,
                "load_average_at_load_end": load_average,
                "modes": modes,
            }
        )
    return phases


def reply_latency(
    *,
    seconds: float,
    rates: list[float],
    approve_every_s: float,
    helpdesk_delay_s: float,
    drain_s: float = 120.0,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """SQLite, one `replydesk serve` per mode of `MODES` (background loops in-process), one phase per rate."""
    servers: list[tuple[Server, Receiver]] = []
    try:
        runs: list[ModeRun] = []
        for name, (concurrency, per_receiver) in MODES.items():
            receiver = Receiver(delay_s=helpdesk_delay_s).start()
            server = Server.create(extra_env=_webhook_env(receiver, concurrency, per_receiver))
            servers.append((server, receiver))
            runs.append(
                ModeRun(
                    name,
                    server.base_url,
                    "",
                    receiver,
                    partial(_outbox_backlog, server.db_file),
                    concurrency,
                    per_receiver,
                )
            )
        started = []
        for run, (server, _) in zip(runs, servers, strict=True):
            # one at a time: two model loads at once on 2 cores can outlast the start timeout
            started.append(server.start())
            server.warm()
            run.api_key = server.api_key
        log(f"  servers up in {', '.join(f'{s:.0f} s' for s in started)}")
        phases = _phases(
            runs, seconds=seconds, rates=rates, approve_every_s=approve_every_s, drain_s=drain_s, log=log
        )
        return {
            "database": "sqlite",
            "seconds": seconds,
            "approve_every_s": approve_every_s,
            "helpdesk_delay_s": helpdesk_delay_s,
            "target_reply_p95_ms": 1000,
            "phases": phases,
        }
    finally:
        for server, receiver in servers:
            server.stop()
            server.cleanup()
            receiver.stop()


# The "poll only" column's processes start with this `sitecustomize`: the worker's outbox listener returns at
# once, so the worker finds a row committed by the API only when its poll interval comes round (what every
# `replydesk worker` did before migration 0009). The API replicas run no background loops either way.
_POLL_ONLY_SITECUSTOMIZE = """\
from service.workflow import worker

worker.DeliveryNotifications.run = lambda self: None
"""


def postgres_reply_latency(
    *,
    seconds: float,
    rates: list[float],
    approve_every_s: float,
    helpdesk_delay_s: float,
    drain_s: float = 120.0,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """PostgreSQL replica topology (scripts/topology.py): per column one `replydesk serve`
    (REPLYDESK_WORKERS_ENABLED=false: it ingests and approves) and one `replydesk worker` (it delivers) on a
    database of their own, default delivery settings; the worker is woken by NOTIFY (`notify`) or only by its
    poll every `worker_interval_s` (`poll_only`, the behaviour before). Both topologies run at once."""
    import psycopg

    from scripts.topology import Topology, libpq_dsn

    concurrency, per_receiver = MODES["default"]
    topologies: list[tuple[Topology, Receiver]] = []
    with tempfile.TemporaryDirectory(prefix="replydesk-deliveries-pg-") as tmp:
        poll_only_path = Path(tmp) / "poll-only"
        poll_only_path.mkdir()
        (poll_only_path / "sitecustomize.py").write_text(_POLL_ONLY_SITECUSTOMIZE)
        try:
            runs: list[ModeRun] = []
            for name in ("poll_only", "notify"):
                receiver = Receiver(delay_s=helpdesk_delay_s).start()
                env = _webhook_env(receiver, concurrency, per_receiver)
                if name == "poll_only":
                    env["PYTHONPATH"] = os.pathsep.join(
                        [str(poll_only_path), *filter(None, [os.environ.get("PYTHONPATH")])]
                    )
                topo = Topology(Path(tmp) / name, apis=1, workers=1, env=env)
                topologies.append((topo, receiver))
                t0 = time.perf_counter()
                topo.start()
                _warm(topo.api_urls[0], topo.api_key)
                log(f"  {name}: 1 API + 1 worker up in {time.perf_counter() - t0:.0f} s")
                dsn = libpq_dsn(topo.database_url)

                def backlog(dsn: str = dsn) -> dict[str, int]:
                    with psycopg.connect(dsn) as conn:
                        rows = conn.execute(
                            "select priority, count(*) from webhook_deliveries where status = 'pending' "
                            "group by priority"
                        ).fetchall()
                    return {f"priority_{p}": n for p, n in rows}

                runs.append(
                    ModeRun(
                        name, topo.api_urls[0], topo.api_key, receiver, backlog, concurrency, per_receiver
                    )
                )
            phases = _phases(
                runs, seconds=seconds, rates=rates, approve_every_s=approve_every_s, drain_s=drain_s, log=log
            )
        finally:
            for topo, receiver in topologies:
                topo.stop()
                receiver.stop()
    return {
        "database": "postgresql",
        "topology": "per column: 1 x replydesk serve (workers disabled) + 1 x replydesk worker, own database",
        "worker_interval_s": float(Settings.model_fields["worker_interval_s"].default),
        "seconds": seconds,
        "approve_every_s": approve_every_s,
        "helpdesk_delay_s": helpdesk_delay_s,
        "target_reply_p95_ms": 1000,
        "phases": phases,
    }


def _commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or None


def run_deliveries_bench(
    *,
    fast_events: int = 600,
    slow_events: int = 40,
    seconds: float = 40.0,
    rates: tuple[float, ...] = DEFAULT_RATES,
    approve_every_s: float = 1.0,
    helpdesk_delay_s: float = 0.1,
    postgres: str | None = None,
    topology_rates: tuple[float, ...] = (),
    out: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "meta": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "commit": _commit(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
    }
    if fast_events or slow_events:
        with tempfile.TemporaryDirectory(prefix="replydesk-deliveries-") as tmp:
            log("throughput, SQLite")
            result["throughput_sqlite"] = throughput_table(
                _sqlite_urls(Path(tmp)), fast_events=fast_events, slow_events=slow_events, log=log
            )
    if postgres:
        log("throughput, PostgreSQL")
        make, drop = _postgres_urls(postgres)
        try:
            result["throughput_postgres"] = throughput_table(
                make, fast_events=fast_events, slow_events=slow_events, log=log
            )
        finally:
            drop()
    if seconds > 0 and rates:
        log("approved-reply latency under a backlog of informational events")
        write_result(result, out, "deliveries")  # part 1 is kept if part 2 cannot start its servers
        result["reply_latency"] = reply_latency(
            seconds=seconds,
            rates=list(rates),
            approve_every_s=approve_every_s,
            helpdesk_delay_s=helpdesk_delay_s,
            log=log,
        )
    if seconds > 0 and topology_rates:
        log("approved-reply latency, PostgreSQL replicas: API approves, a separate worker delivers")
        write_result(result, out, "deliveries")
        result["reply_latency_replicas"] = postgres_reply_latency(
            seconds=seconds,
            rates=list(topology_rates),
            approve_every_s=approve_every_s,
            helpdesk_delay_s=helpdesk_delay_s,
            log=log,
        )
    result["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deliveries", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fast-events",
        type=int,
        default=600,
        help="Rows drained to the fast receiver (0 and --slow-events 0: skip part 1).",
    )
    parser.add_argument("--slow-events", type=int, default=40, help="Rows drained to the 0.3 s receiver.")
    parser.add_argument("--seconds", type=float, default=40.0, help="Load duration of part 2 (0: skip it).")
    parser.add_argument(
        "--rates",
        default=",".join(f"{r:g}" for r in DEFAULT_RATES),
        help="Part 2: ingests per second per server, one load phase per rate (comma-separated).",
    )
    parser.add_argument("--approve-every", type=float, default=1.0, help="Part 2: seconds between approvals.")
    parser.add_argument(
        "--helpdesk-delay", type=float, default=0.1, help="Part 2: receiver seconds per POST."
    )
    parser.add_argument("--postgres", default=None, help="Also run part 1 on this PostgreSQL URL.")
    parser.add_argument(
        "--topology-rates",
        default="",
        help="Part 3 (local PostgreSQL via scripts/topology.py): ingests/s per API, one phase per rate; "
        "empty: skip it.",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = (
        args.out
        or Path("bench") / "results" / f"deliveries-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_deliveries_bench(
        fast_events=args.fast_events,
        slow_events=args.slow_events,
        seconds=args.seconds,
        rates=tuple(float(r) for r in args.rates.split(",") if r),
        approve_every_s=args.approve_every,
        helpdesk_delay_s=args.helpdesk_delay,
        postgres=args.postgres,
        topology_rates=tuple(float(r) for r in args.topology_rates.split(",") if r),
        out=out,
    )
    result["meta"]["command"] = " ".join(
        ["python -m bench.deliveries", *(sys.argv[1:] if argv is None else argv)]
    )
    print(f"written to {write_result(result, out, 'deliveries')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
