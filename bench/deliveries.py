"""Background work that keeps up (issue #16, item 1): how fast the outbox delivers, one delivery at a time
(the behaviour before, by configuration: `REPLYDESK_DELIVERY_CONCURRENCY=1`,
`REPLYDESK_DELIVERY_PER_RECEIVER=1`) and with the defaults, side by side in one run.

1. Throughput (in-process, SQLite file): `events` outbox rows to one local receiver that answers at once
   (`fast`) and to one that takes 0.3 s per POST (`slow`), drained by the real `WebhookDispatcher` in the
   worker's delivery loop (`pump`, then wait for a committed row or a freed slot). Deliveries/s = rows / time
   from the first claim to the last POST answered.
2. Approved-reply latency under a backlog (end to end): two `replydesk serve` subprocesses
   (`bench.load.Server`, their own SQLite files, no LLM), one per mode, both running at once so the machine's
   load hits both alike.
   Each gets `ingest_rate` `POST /v1/messages` per second (unique texts, one conversation each) with
   `REPLYDESK_WEBHOOK_EVENTS=["*"]`, so every `message.received` and `suggestions.created` goes to a local
   helpdesk receiver that takes `helpdesk_delay_s` per POST; every `approve_every_s` an agent approves one of
   the drafts. Latency = from sending the approval to the receiver having the `message.outbound` (same machine
   clock). Also: informational events' lag (event time to receipt) and the outbox backlog when the load stops.
   Priority cannot be switched off by configuration: the "before" mode claims replies first too, so its reply
   latency shows concurrency's share only; the issue's figure without priority was 44.9 s.

`python -m bench.deliveries` (about 3 minutes on 2 cores) writes `bench/results/deliveries-<UTC time>.json`;
`--postgres URL` runs part 1 on PostgreSQL too (a throw-away database on that server).
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
                status = receiver._hold()
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

    def _hold(self) -> int:
        """Count the request in, hold it as configured; the status to answer."""
        with self._cond:
            self.attempts += 1
            attempt = self.attempts
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
        return 500 if attempt <= self.fail_first else 200

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
class ModeRun:
    name: str
    server: Server
    receiver: Receiver
    ingested: list[dict[str, Any]] = field(default_factory=list)  # suggestions not yet approved
    approvals: list[Approval] = field(default_factory=list)
    ingest_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _headers(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def _ingest(run: ModeRun, client: httpx.Client, i: int, nonce: str) -> None:
    import random

    text, locale = message(random.Random(i), nonce, i)
    t0 = time.perf_counter()
    try:
        r = client.post(
            f"{run.server.base_url}/v1/messages",
            headers=_headers(run.server),
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
            run.errors.append(f"ingest: {type(exc).__name__}")
        return
    with run.lock:
        run.ingest_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code in (200, 201) and r.json().get("suggestions"):
            run.ingested.append(r.json()["suggestions"][0])
        elif r.status_code not in (200, 201):
            run.errors.append(f"ingest: HTTP {r.status_code}")


def _approve_next(run: ModeRun, client: httpx.Client) -> None:
    with run.lock:
        if not run.ingested:
            return
        suggestion = run.ingested.pop()
    sent = time.time()
    r = client.post(
        f"{run.server.base_url}/v1/suggestions/{suggestion['id']}/approve",
        headers=_headers(run.server),
        json={},
    )
    answered = time.time()
    if r.status_code != 200:
        with run.lock:
            run.errors.append(f"approve: HTTP {r.status_code}")
        return
    with run.lock:
        run.approvals.append(Approval(r.json()["message"]["id"], sent, answered))


def _load(
    run: ModeRun, *, seconds: float, rate: float, approve_every_s: float, stop: threading.Event
) -> None:
    """Open-loop ingest at `rate`/s on a pool of clients, and one approval every `approve_every_s`."""
    nonce = uuid.uuid4().hex[:6]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(16) as pool:
        t0 = time.perf_counter()
        next_approval = t0 + approve_every_s
        i = 0
        while (now := time.perf_counter()) - t0 < seconds and not stop.is_set():
            if now >= t0 + i / rate:
                pool.submit(_ingest, run, client, i, nonce)
                i += 1
            if now >= next_approval:
                pool.submit(_approve_next, run, client)
                next_approval += approve_every_s
            time.sleep(0.005)


def _outbox_backlog(db_file: Path) -> dict[str, int]:
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute(
            "select priority, count(*) from webhook_deliveries where status = 'pending' group by priority"
        ).fetchall()
    return {f"priority_{p}": n for p, n in rows}


def _summary(run: ModeRun, load_end: float) -> dict[str, Any]:
    outbound = {p.body["data"]["message"]["id"]: p.at for p in run.receiver.delivered("message.outbound")}
    from_request = [
        (outbound[a.message_id] - a.sent_at) * 1000 for a in run.approvals if a.message_id in outbound
    ]
    from_answer = [
        (outbound[a.message_id] - a.answered_at) * 1000 for a in run.approvals if a.message_id in outbound
    ]
    info = [p for p in run.receiver.delivered() if p.type != "message.outbound"]
    lag = [(p.at - _epoch(p.body["created_at"])) * 1000 for p in info]
    during = [p for p in run.receiver.delivered() if p.at <= load_end]
    return {
        "approvals": len(run.approvals),
        "replies_delivered": len(from_request),
        "reply_latency_ms": {
            "p50": _pct(from_request, 50),
            "p95": _pct(from_request, 95),
            "max": round(max(from_request), 1) if from_request else None,
        },
        "reply_latency_from_approval_answer_ms": {"p50": _pct(from_answer, 50), "p95": _pct(from_answer, 95)},
        "informational_delivered": len(info),
        "informational_lag_ms": {"p50": _pct(lag, 50), "p95": _pct(lag, 95)},
        "deliveries_during_load": len(during),
        "ingests": len(run.ingest_ms),
        "ingest_ms": {"p50": _pct(run.ingest_ms, 50), "p95": _pct(run.ingest_ms, 95)},
        "errors": run.errors[:20],
        "outbox_pending_at_load_end": _outbox_backlog(run.server.db_file),
    }


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def reply_latency(
    *,
    seconds: float,
    rate: float,
    approve_every_s: float,
    helpdesk_delay_s: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    runs: list[ModeRun] = []
    try:
        for name, (concurrency, per_receiver) in MODES.items():
            receiver = Receiver(delay_s=helpdesk_delay_s).start()
            server = Server.create(
                extra_env={
                    "REPLYDESK_WEBHOOK_URL": receiver.url,
                    "REPLYDESK_WEBHOOK_SECRET": SECRET,
                    "REPLYDESK_WEBHOOK_EVENTS": '["*"]',
                    "REPLYDESK_DELIVERY_CONCURRENCY": str(concurrency),
                    "REPLYDESK_DELIVERY_PER_RECEIVER": str(per_receiver),
                }
            )
            runs.append(ModeRun(name, server, receiver))
        started = []
        for run in runs:  # one at a time: two model loads at once on 2 cores can outlast the start timeout
            started.append(run.server.start())
            run.server.warm()
        log(f"  servers up in {', '.join(f'{s:.0f} s' for s in started)}; load for {seconds:.0f} s")
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_load,
                args=(run,),
                kwargs={"seconds": seconds, "rate": rate, "approve_every_s": approve_every_s, "stop": stop},
            )
            for run in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_end = time.time()
        backlog = {run.name: _outbox_backlog(run.server.db_file) for run in runs}
        # the approved replies still on their way (none should be, with priority)
        for run in runs:
            run.receiver.wait_for(len(run.approvals), 20, type_="message.outbound")
        out = {}
        for run in runs:
            out[run.name] = _summary(run, load_end)
            out[run.name]["outbox_pending_at_load_end"] = backlog[run.name]
            out[run.name]["concurrency"], out[run.name]["per_receiver"] = MODES[run.name]
            log(
                f"  {run.name}: reply p95 {out[run.name]['reply_latency_ms']['p95']} ms, "
                f"backlog {backlog[run.name]}"
            )
        return {
            "seconds": seconds,
            "ingest_rate_per_s": rate,
            "approve_every_s": approve_every_s,
            "helpdesk_delay_s": helpdesk_delay_s,
            "target_reply_p95_ms": 1000,
            "modes": out,
        }
    finally:
        for run in runs:
            run.server.stop()
            run.server.cleanup()
            run.receiver.stop()


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
    rate: float = 6.0,
    approve_every_s: float = 1.0,
    helpdesk_delay_s: float = 0.1,
    postgres: str | None = None,
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
    if seconds > 0:
        log("approved-reply latency under a backlog of informational events")
        write_result(result, out, "deliveries")  # part 1 is kept if part 2 cannot start its servers
        result["reply_latency"] = reply_latency(
            seconds=seconds,
            rate=rate,
            approve_every_s=approve_every_s,
            helpdesk_delay_s=helpdesk_delay_s,
            log=log,
        )
    result["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deliveries", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast-events", type=int, default=600, help="Rows drained to the fast receiver.")
    parser.add_argument("--slow-events", type=int, default=40, help="Rows drained to the 0.3 s receiver.")
    parser.add_argument("--seconds", type=float, default=40.0, help="Load duration of part 2 (0: skip it).")
    parser.add_argument("--rate", type=float, default=6.0, help="Part 2: ingests per second per server.")
    parser.add_argument("--approve-every", type=float, default=1.0, help="Part 2: seconds between approvals.")
    parser.add_argument(
        "--helpdesk-delay", type=float, default=0.1, help="Part 2: receiver seconds per POST."
    )
    parser.add_argument("--postgres", default=None, help="Also run part 1 on this PostgreSQL URL.")
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
        rate=args.rate,
        approve_every_s=args.approve_every,
        helpdesk_delay_s=args.helpdesk_delay,
        postgres=args.postgres,
        out=out,
    )
    result["meta"]["command"] = " ".join(
        ["python -m bench.deliveries", *(sys.argv[1:] if argv is None else argv)]
    )
    print(f"written to {write_result(result, out, 'deliveries')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
