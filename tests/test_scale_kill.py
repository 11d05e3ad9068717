"""Two API replicas and two workers on one PostgreSQL; SIGKILL one API and one worker mid-run, restart them,
and count: nothing lost, nothing doubled beyond same-event-id redelivery.

The topology is `scripts/topology.py` (the same processes as compose.yaml, without containers): 2 ×
`replydesk serve` with REPLYDESK_WORKERS_ENABLED=false and 2 × `replydesk worker`, one fresh database, one
shared data directory. Webhooks (all types: REPLYDESK_WEBHOOK_EVENTS=["*"], signed) go to a local helpdesk
receiver on 127.0.0.1 that verifies each signature, records every POST's event id and delivery id, and answers
200. First-response and next-response targets are 6 s, so the conversations nobody answers breach their SLA.

Client threads, each request to the two APIs in turn; a request that gets no answer (the API was killed, or is
down) is sent again to the other API, with the same idempotency key:

* ingest: `POST /v1/messages`, one conversation per message (the pipeline runs in the request: the drafts
  come back);
* agents: approve the first draft of two conversations in three (the third waits and breaches its SLA);
* agents: resolve every other approved conversation, from both APIs at once (a double click: one wins), which
  sends its survey;
* the helpdesk: for every `message.outbound` received, report `delivered` then `read`.

After ~20 s one API and one worker are SIGKILLed (mid-request, mid-delivery) and started again on the same
port; the clients keep going, then stop; then everything settles (every outbox row delivered). Counted from
the database and the receiver (printed with `-s`, asserted):

* every acknowledged ingest is stored exactly once, and nothing unacknowledged is stored;
* every approval has one outbound message, received by the helpdesk at least once, always with the same
  event id; deliveries per event: one delivery id each, extra POSTs only as same-event redeliveries (counted);
* SLA alerts: at most one `sla.breached` / `sla.at_risk` per cycle (in the database and at the receiver);
* surveys: at most one per conversation, exactly one per resolved conversation, each delivered;
* every `read` receipt acknowledged leaves its message `read`.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from bench.stub_llm import StubHandler, StubServer
from scripts.topology import Topology, libpq_dsn
from service.signing import DELIVERY_HEADER, InvalidSignature, verify_signature

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECRET = "scale-kill-webhook-secret"
SLA_MINUTES = 0.1  # 6 s: unanswered conversations breach while the test runs
INGEST_THREADS = 4
APPROVE_THREADS = 2
KILL_AFTER_S = 20.0  # drive this long before the kill...
DRIVE_AFTER_RESTART_S = 8.0  # ...and this long once both killed processes are back
QUIET_BUDGET_S = 30.0  # alerts announced after the first drain are delivered within this
SETTLE_BUDGET_S = 120.0  # a delivery leased by the killed worker waits out its lease (18 s here)
REQUEST_TIMEOUT_S = 60.0
RETRY_FOR_S = 120.0  # a request is retried (on the other API) this long at most


# -- the helpdesk: a webhook receiver ------------------------------------------------------------------------


@dataclass
class Received:
    """Every POST the helpdesk received, in order: (event id, delivery id, event type, envelope)."""

    posts: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    outbound: list[int] = field(default_factory=list)  # message ids of message.outbound, first receipt only
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_event(self) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
        with self.lock:
            out: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
            for event_id, delivery_id, type_, env in self.posts:
                out[event_id].append((delivery_id, type_, env))
            return out


def _receiver(received: Received) -> type[StubHandler]:
    class Helpdesk(StubHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.read_body()
            try:
                verified = verify_signature(SECRET, dict(self.headers.items()), body, datetime.now(UTC))
            except InvalidSignature:
                with received.lock:
                    received.bad_signatures += 1
                self.send_json(401, {"error": "bad signature"})
                return
            env = json.loads(body)
            with received.lock:
                first = all(e != verified.event_id for e, _, _, _ in received.posts)
                received.posts.append((verified.event_id, self.headers[DELIVERY_HEADER], env["type"], env))
                if first and env["type"] == "message.outbound":
                    received.outbound.append(int(env["message_id"]))
            self.send_json(200, {})

    return Helpdesk


@pytest.fixture
def helpdesk() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = StubServer(_receiver(received)).start()
    try:
        yield f"http://127.0.0.1:{server.port}/replydesk", received
    finally:
        server.stop()


@pytest.fixture
def topology(tmp_path: Path, helpdesk: tuple[str, Received]) -> Iterator[Topology]:
    url, _ = helpdesk
    sla = json.dumps({u: SLA_MINUTES for u in ("critical", "high", "normal", "low")})
    topo = Topology(
        tmp_path / "topology",
        apis=2,
        workers=2,
        env={
            "REPLYDESK_WEBHOOK_URL": url,
            "REPLYDESK_WEBHOOK_SECRET": SECRET,
            "REPLYDESK_WEBHOOK_EVENTS": '["*"]',
            "REPLYDESK_WEBHOOK_BACKOFF_S": "0.5",
            "REPLYDESK_WEBHOOK_BACKOFF_MAX_S": "2",
            # the receiver is local and answers at once: a 3 s attempt timeout leases a claimed delivery for
            # 18 s, so one the killed worker held is retried after 18 s instead of 60
            "REPLYDESK_WEBHOOK_TIMEOUT_S": "3",
            "REPLYDESK_WORKER_INTERVAL_S": "0.5",
            "REPLYDESK_PIPELINE_STALE_S": "5",
            "REPLYDESK_PIPELINE_RECOVERY_INTERVAL_S": "1",
            "REPLYDESK_SLA_FIRST_RESPONSE_MINUTES": sla,
            "REPLYDESK_SLA_NEXT_RESPONSE_MINUTES": sla,
        },
    )
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


# -- the clients ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What the clients were told (2xx answers), and the work handed from one client to the next."""

    topo: Topology
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    acked_ingests: set[str] = field(default_factory=set)
    acked_as_duplicate: int = 0  # stored by a request that got no answer, acknowledged when sent again
    to_approve: list[int] = field(default_factory=list)  # rank-1 suggestion ids, in ingest order
    acked_approvals: dict[int, int] = field(default_factory=dict)  # suggestion id -> outbound message id
    to_resolve: list[int] = field(default_factory=list)  # conversation ids
    resolved: dict[int, list[int]] = field(default_factory=dict)  # conversation id -> status codes of both
    acked_read: set[int] = field(default_factory=set)  # outbound message ids whose `read` receipt was acked
    retried: Counter[str] = field(default_factory=Counter)  # requests sent again on the other API, by kind
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, kind: str, method: str, path: str, body: dict[str, Any], turn: int) -> httpx.Response:
        """Send to API `turn % 2`; when no answer comes, to the other one, until one answers (or give up)."""
        headers = {"Authorization": f"Bearer {self.topo.api_key}"}
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            url = self.topo.api_urls[turn % len(self.topo.api_urls)]
            try:
                return httpx.request(
                    method, url + path, json=body, headers=headers, timeout=REQUEST_TIMEOUT_S
                )
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                with self.lock:
                    self.retried[kind] += 1
                turn += 1
                time.sleep(0.2)


def _ingest(run: Run, worker: int) -> None:
    i = 0
    while not run.stop.is_set():
        key = f"{run.nonce}-{worker}-{i}"
        body = {
            "channel": "webchat",
            "conversation_external_id": f"scale-{key}",
            "customer": {"id": f"cust-{key}", "locale": "en-GB"},
            "text": f"Hi, where is my order A{random.randint(10000, 99999)}? It was due Friday (ref {key})",
            "sent_at": datetime.now(UTC).isoformat(),
            "idempotency_key": key,
        }
        r = run.call("ingest", "POST", "/v1/messages", body, worker + i)
        assert r.status_code in (200, 201), r.text
        out = r.json()
        with run.lock:
            run.acked_ingests.add(key)
            run.acked_as_duplicate += int(out["duplicate"])
            if out["suggestions"] and i % 3 != 2:  # every third conversation is left waiting
                run.to_approve.append(out["suggestions"][0]["id"])
        i += 1


def _approve(run: Run, worker: int) -> None:
    n = 0
    while not run.stop.is_set():
        with run.lock:
            todo = [
                s for s in run.to_approve if s % APPROVE_THREADS == worker and s not in run.acked_approvals
            ]
        if not todo:
            time.sleep(0.1)
            continue
        for sug in todo:
            r = run.call("approve", "POST", f"/v1/suggestions/{sug}/approve", {}, worker + n)
            n += 1
            assert r.status_code == 200, r.text
            decision = r.json()
            with run.lock:
                run.acked_approvals[sug] = decision["message"]["id"]
                if len(run.acked_approvals) % 2 == 0:
                    run.to_resolve.append(decision["message"]["conversation_id"])


def _resolve(run: Run, pool: ThreadPoolExecutor) -> None:
    done = 0
    while not run.stop.is_set():
        with run.lock:
            todo = run.to_resolve[done:]
        done += len(todo)
        if not todo:
            time.sleep(0.1)
        for conv in todo:
            both = [
                pool.submit(run.call, "resolve", "POST", f"/v1/conversations/{conv}/resolve", {}, turn)
                for turn in (0, 1)
            ]
            codes = sorted(f.result().status_code for f in both)
            with run.lock:
                run.resolved[conv] = codes


def _receipts(run: Run, received: Received) -> None:
    done = 0
    while not run.stop.is_set():
        with received.lock:
            todo = received.outbound[done:]
        done += len(todo)
        if not todo:
            time.sleep(0.1)
        for mid in todo:
            for n, status in enumerate(("delivered", "read")):
                r = run.call("receipt", "POST", f"/v1/messages/{mid}/status", {"status": status}, mid + n)
                assert r.status_code == 200, r.text
            with run.lock:
                run.acked_read.add(mid)


def _guarded(fn: Callable[..., None], errors: list[BaseException]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread, after the join)
            errors.append(exc)

    return run


# -- counting ------------------------------------------------------------------------------------------------


def _rows(topo: Topology, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_dsn(topo.database_url)) as con:
        return con.execute(sql, params).fetchall()


def _one(topo: Topology, sql: str, *params: Any) -> int:
    return int(_rows(topo, sql, *params)[0][0])


def _settled(topo: Topology) -> bool:
    """No outbox row left to deliver and no pipeline left to run."""
    return (
        _one(topo, "select count(*) from webhook_deliveries where status = 'pending'") == 0
        and _one(topo, "select count(*) from messages where pipeline_status = 'pending'") == 0
    )


def test_two_apis_and_two_workers_lose_and_double_nothing_across_a_sigkill_of_one_of_each(topology, helpdesk):
    _, received = helpdesk
    run = Run(topology)
    errors: list[BaseException] = []
    pool = ThreadPoolExecutor(max_workers=2)
    threads = (
        [threading.Thread(target=_guarded(_ingest, errors), args=(run, w)) for w in range(INGEST_THREADS)]
        + [threading.Thread(target=_guarded(_approve, errors), args=(run, w)) for w in range(APPROVE_THREADS)]
        + [threading.Thread(target=_guarded(_resolve, errors), args=(run, pool))]
        + [threading.Thread(target=_guarded(_receipts, errors), args=(run, received))]
    )
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(KILL_AFTER_S)
    with run.lock:
        before_kill = {"acked": len(run.acked_ingests), "approved": len(run.acked_approvals)}
    topology.kill("api", 0)  # SIGKILL: its requests in flight get no answer
    topology.kill("worker", 0)  # SIGKILL: its leased deliveries wait out their lease
    t_kill = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as starter:
        restarts = list(starter.map(lambda kind: topology.start_process(kind, 0), ("api", "worker")))
    time.sleep(DRIVE_AFTER_RESTART_S)
    run.stop.set()
    for t in threads:
        t.join(timeout=RETRY_FOR_S + REQUEST_TIMEOUT_S)
    pool.shutdown()
    assert not errors, errors
    t_stop = time.monotonic()
    while time.monotonic() - t_stop < SETTLE_BUDGET_S and not _settled(topology):
        time.sleep(0.5)
    settle_s = time.monotonic() - t_stop
    # The SLA scan keeps announcing waits that fall due after the clients stopped, so rows can still be added
    # after the outbox first drained: read the outbox and the helpdesk's POSTs once they agree (each row
    # delivered, each event received), or after QUIET_BUDGET_S (then the assertions below say what is off).
    t_read = time.monotonic()
    while True:
        time.sleep(1.0)  # the last delivered POSTs' bookkeeping
        by_event = received.by_event()
        outbox = dict(_rows(topology, "select status, count(*) from webhook_deliveries group by status"))
        if set(outbox) <= {"delivered"} and outbox.get("delivered") == len(by_event):
            break
        if time.monotonic() - t_read > QUIET_BUDGET_S:
            break

    # 1. Acknowledged vs stored.
    keys = _rows(
        topology,
        "select idempotency_key, count(*) from messages where direction = 'inbound' and "
        "idempotency_key like %s group by idempotency_key",
        f"{run.nonce}-%",
    )
    stored = {k for k, _ in keys}
    stored_twice = sum(1 for _, n in keys if n > 1)
    # 2. Approved vs delivered: one outbound message per approval, received by the helpdesk.
    outbound = dict(
        _rows(
            topology,
            "select suggestion_id, count(*) from messages where direction = 'outbound' and "
            "suggestion_id = any(%s) group by suggestion_id",
            list(run.acked_approvals),
        )
    )
    event_of_message: dict[int, set[str]] = defaultdict(set)
    for event_id, posts in by_event.items():
        for _, type_, env in posts:
            if type_ == "message.outbound":
                event_of_message[int(env["message_id"])].add(event_id)
    undelivered_replies = [m for m in run.acked_approvals.values() if m not in event_of_message]
    replies_with_two_events = [m for m, events in event_of_message.items() if len(events) > 1]
    # 3. Deliveries per event: one delivery id each; extra POSTs are same-event redeliveries.
    posts_total = sum(len(p) for p in by_event.values())
    delivery_ids_per_event = Counter(len({d for d, _, _ in p}) for p in by_event.values())
    redelivered = {e: len(p) for e, p in by_event.items() if len(p) > 1}
    # 4. SLA alerts per cycle, in the database and at the receiver.
    sla_db = _rows(
        topology,
        "select type, count(*), count(distinct dedupe_key), count(*) - count(dedupe_key) from events "
        "where type like 'sla.%%' group by type",
    )
    sla_at_receiver: dict[tuple[str, int, str, str], set[str]] = defaultdict(set)
    for event_id, posts in by_event.items():
        _, type_, env = posts[0]
        if type_.startswith("sla."):
            d = env["data"]
            sla_at_receiver[(type_, d["conversation_id"], d["kind"], d["started_at"])].add(event_id)
    sla_alerts_doubled = sum(1 for ids in sla_at_receiver.values() if len(ids) > 1)
    breached = sum(1 for k in sla_at_receiver if k[0] == "sla.breached")
    # 5. Surveys per conversation.
    surveys = dict(_rows(topology, "select conversation_id, count(*) from surveys group by conversation_id"))
    survey_messages = [m for (m,) in _rows(topology, "select message_id from surveys")]
    surveys_undelivered = [m for m in survey_messages if m not in event_of_message]
    resolve_codes = Counter(tuple(c) for c in run.resolved.values())
    # 6. Receipts.
    not_read = _one(
        topology,
        "select count(*) from messages where id = any(%s) and status <> 'read'",
        list(run.acked_read),
    )

    print(
        f"\nscale kill test: 2 API + 2 workers on PostgreSQL, {time.monotonic() - t0:.0f} s; at the kill "
        f"{before_kill['acked']} ingests and {before_kill['approved']} approvals acknowledged; restart API "
        f"{restarts[0]:.1f} s, worker {restarts[1]:.1f} s; settled {settle_s:.1f} s after the clients "
        f"stopped ({time.monotonic() - t_kill:.0f} s after the kill)\n"
        f"  ingests: acknowledged {len(run.acked_ingests)}, stored {len(stored)}, stored twice "
        f"{stored_twice}, stored by a request that got no answer and acknowledged when sent again "
        f"{run.acked_as_duplicate}; requests sent again to the other API {dict(run.retried)}\n"
        f"  replies: approvals acknowledged {len(run.acked_approvals)}, outbound messages "
        f"{sum(outbound.values())} (suggestions with two: {sum(1 for n in outbound.values() if n > 1)}), "
        f"received by the helpdesk {len(run.acked_approvals) - len(undelivered_replies)}, with two event ids "
        f"{len(replies_with_two_events)}\n"
        f"  deliveries: outbox rows by status {outbox}, POSTs received {posts_total} for "
        f"{len(by_event)} events, delivery ids per event {dict(delivery_ids_per_event)}, same-event "
        f"redeliveries {sum(n - 1 for n in redelivered.values())} (of {len(redelivered)} events), bad "
        f"signatures {received.bad_signatures}\n"
        f"  SLA: events by type (count, distinct cycles, without key) {sla_db}; breaches at the helpdesk "
        f"{breached}, alerts received under two event ids {sla_alerts_doubled}\n"
        f"  surveys: conversations resolved {len(run.resolved)} (answers of the double resolve "
        f"{dict(resolve_codes)}), surveys {sum(surveys.values())} in {len(surveys)} conversations, "
        f"undelivered {len(surveys_undelivered)}\n"
        f"  receipts: read receipts acknowledged {len(run.acked_read)}, of those not `read` {not_read}"
    )

    assert before_kill["acked"] > 0 and before_kill["approved"] > 0, "the kill came before any work"
    assert run.acked_ingests == stored and stored_twice == 0
    assert set(outbound) == set(run.acked_approvals) and set(outbound.values()) == {1}
    assert undelivered_replies == [] and replies_with_two_events == []
    assert received.bad_signatures == 0
    assert set(delivery_ids_per_event) == {1}, "a redelivery carried another delivery id"
    assert set(outbox) == {"delivered"} and outbox["delivered"] == len(by_event), outbox
    assert breached > 0, "no SLA breach happened: the test proved nothing about alerts"
    assert all(n == d and k == 0 for _, n, d, k in sla_db) and sla_alerts_doubled == 0
    assert set(surveys.values()) <= {1} and set(surveys) == set(run.resolved)
    assert all(codes.count(200) <= 1 and set(codes) <= {200, 409} for codes in run.resolved.values())
    assert surveys_undelivered == []
    assert not_read == 0
