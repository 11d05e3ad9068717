"""The outbox delivery engine (issue #16, item 1): deliveries run concurrently within a bound per receiver, a
slow receiver leaves the others flowing, replies to customers go first, informational webhooks are opt-in, two
dispatchers on one database deliver each row once, and a retried delivery keeps its event id.

Receivers are real HTTP servers on 127.0.0.1 (`bench.deliveries.Receiver`); no assert times anything beyond
generous bounds that only a hang would miss.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bench.deliveries import Receiver, drive
from service.clock import Clock, ManualClock, SystemClock
from service.container import Container
from service.db import Database
from service.db.models import Event, WebhookDelivery
from service.openapi import OUTBOUND_EVENTS
from service.settings import REPO_ROOT, Settings
from service.workflow.events import EventLog
from service.workflow.webhooks import (
    EVENT_CLASSES,
    Priority,
    WebhookDispatcher,
    WebhookEventsInvalid,
    delivery_priority,
    receiver_of,
)
from service.workflow.worker import WorkflowWorker
from tests.workflow_harness import harness, wait_until

SECRET = "whsec_delivery_engine"
HANG_S = 20.0  # only a hang takes this long


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'outbox.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def any_db(db_url: str) -> Iterator[Database]:
    """The same on SQLite and on the local PostgreSQL (`db_url` from conftest)."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


def start(made: list[Receiver], **kw: Any) -> Receiver:
    r = Receiver(**kw).start()
    made.append(r)
    return r


def dispatcher(db: Database, clock: Clock | None = None, **kw: Any) -> WebhookDispatcher:
    values: dict[str, Any] = {"concurrency": 1, "per_receiver": 1, **kw}
    return WebhookDispatcher(
        db,
        clock or SystemClock(),
        secret=SECRET,
        max_attempts=5,
        backoff_s=1.0,
        backoff_max_s=60.0,
        timeout_s=HANG_S,
        **values,
    )


def emit(
    db: Database,
    url: str | None,
    types: list[str],
    *,
    now: datetime | None = None,
    webhook_events: list[str] | None = None,
    deliver_to: str | None = None,
    data: dict[str, Any] | None = None,
) -> list[int]:
    log = EventLog(db, url, ["*"] if webhook_events is None else webhook_events)
    at = now or SystemClock().now()
    with db.session() as s:
        return [
            log.emit(s, t, data or {"message": {"id": n, "kind": "reply"}}, now=at, deliver_to=deliver_to).id
            for n, t in enumerate(types)
        ]


def outbox(db: Database) -> list[WebhookDelivery]:
    with db.session() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))


# -- concurrency and the per-receiver bound --------------------------------------------------------------


def test_deliveries_to_one_receiver_run_at_once_up_to_the_per_receiver_bound_and_never_more(db, receivers):
    # Each POST is held until 4 are in flight at once: one delivery at a time would never open the gate.
    hook = start(receivers, gate=4, max_hold_s=HANG_S)
    emit(db, hook.url, ["message.received"] * 12)
    d = dispatcher(db, concurrency=8, per_receiver=4)
    try:
        assert d.run_once() == 12
    finally:
        d.close()
    assert hook.gate_opened, "4 deliveries never ran at once"
    assert hook.peak_in_flight == 4  # the bound, although 8 slots were free
    assert len(hook.delivered()) == 12
    assert {row.status for row in outbox(db)} == {"delivered"}


def test_the_pool_runs_as_many_deliveries_as_its_concurrency_across_receivers(db, receivers):
    # Three receivers, each holding its POST until released: all three must be in flight at once.
    hooks = [start(receivers, held=True, max_hold_s=HANG_S) for _ in range(3)]
    for h in hooks:
        emit(db, h.url, ["message.received"])
    d = dispatcher(db, concurrency=3, per_receiver=1)
    try:
        futures = d.pump()
        assert len(futures) == 3
        assert all(_wait(lambda h=h: h.in_flight == 1) for h in hooks)
        assert sum(d.in_flight().values()) == 3 and set(d.in_flight()) == {receiver_of(h.url) for h in hooks}
        for h in hooks:
            h.release()
        for f in futures:
            f.result(timeout=HANG_S)
    finally:
        d.close()
    assert [len(h.delivered()) for h in hooks] == [1, 1, 1]


def test_a_slow_receiver_holds_only_its_own_slots_while_another_receiver_keeps_getting_deliveries(
    db, receivers
):
    slow = start(receivers, held=True, max_hold_s=HANG_S)
    fast = start(receivers)
    # The slow receiver's backlog is older (claimed first), and there are more of them than slots.
    emit(db, slow.url, ["message.received"] * 10)
    emit(db, fast.url, ["message.received"] * 6)
    d = dispatcher(db, concurrency=4, per_receiver=2)
    runner = threading.Thread(
        target=drive, args=(d, lambda: len(fast.delivered()) + len(slow.delivered()) == 16, HANG_S * 2)
    )
    runner.start()
    try:
        assert fast.wait_for(6, HANG_S), "the fast receiver waited behind the slow one"
        assert slow.delivered() == [] and slow.in_flight == 2  # the slow one holds its 2 slots, no more
        slow.release()
        runner.join(HANG_S * 2)
    finally:
        slow.release()
        runner.join(HANG_S)
        d.close()
    assert len(slow.delivered()) == 10 and slow.peak_in_flight == 2
    assert {row.status for row in outbox(db)} == {"delivered"}


# -- priority --------------------------------------------------------------------------------------------


def test_an_approved_reply_is_delivered_before_a_backlog_of_informational_events(db_url, tmp_path, app):
    """Through the real workflow: ingests leave informational events queued, the agent approves one draft;
    the next delivery the helpdesk gets is the reply."""
    with harness(db_url, tmp_path, app.state.container, webhook_events=["*"], delivery_concurrency=1) as h:
        assert h.receiver is not None
        first = h.ingest("Where is my order 554433?", conversation="c-0")
        for n in range(1, 8):
            h.ingest(f"Do you ship to Norway? ({n})", conversation=f"c-{n}")
        backlog = len(outbox(h.container.db))
        assert backlog >= 16  # message.received + suggestions.created per ingest, none delivered yet
        out = h.post(f"/v1/suggestions/{first['suggestions'][0]['id']}/approve", json={}).json()["message"]
        assert h.container.workflow.dispatcher.run_once(limit=1) == 1
        assert [r.body["type"] for r in h.receiver.received] == ["message.outbound"]
        assert h.receiver.received[0].body["data"]["message"]["id"] == out["id"]
        while h.deliver():
            pass
        assert {row.status for row in outbox(h.container.db)} == {"delivered"}
        assert len(h.receiver.received) > backlog  # the backlog followed, and the reply's `sent` status


def test_claims_follow_priority_then_age(db, receivers):
    hook = start(receivers)
    emit(db, hook.url, ["message.received", "suggestions.created", "conversation.assigned"])
    emit(db, hook.url, ["sla.breached"])
    emit(db, hook.url, ["message.outbound"])
    emit(db, hook.url, ["message.outbound"], data={"message": {"id": 9, "kind": "survey"}})
    d = dispatcher(db)
    try:
        assert d.run_once() == 6
    finally:
        d.close()
    posts = [(p.type, p.body["data"]["message"]["kind"]) for p in hook.delivered()]
    # replies first; then alerts (a survey waits behind replies), oldest first; then informational ones
    assert posts[:3] == [
        ("message.outbound", "reply"),
        ("sla.breached", "reply"),
        ("message.outbound", "survey"),
    ]
    assert [p.type for p in hook.delivered()][3:] == [
        "message.received",
        "suggestions.created",
        "conversation.assigned",
    ]


def test_priority_is_set_when_the_event_is_emitted(db):
    emit(
        db,
        "https://helpdesk.example/hooks",
        ["message.outbound", "sla.at_risk", "message.failed", "survey.answered"],
    )
    emit(db, "https://helpdesk.example/hooks", ["message.outbound"], data={"message": {"kind": "survey"}})
    assert [row.priority for row in outbox(db)] == [0, 1, 1, 2, 1]
    assert delivery_priority("message.outbound", {"message": {"kind": "reply"}}) is Priority.reply


# -- which events reach the webhook ------------------------------------------------------------------------


def test_every_documented_event_type_is_classified_with_a_reason():
    assert set(EVENT_CLASSES) == {e.type for e in OUTBOUND_EVENTS}
    assert all(c.reason for c in EVENT_CLASSES.values())
    actionable = {t for t, c in EVENT_CLASSES.items() if c.actionable}
    assert actionable == {"message.outbound", "sla.at_risk", "sla.breached", "message.failed"}


def test_informational_events_reach_the_webhook_only_when_subscribed_but_are_always_in_the_log(db):
    url = "https://helpdesk.example/hooks"
    kinds = ["message.received", "suggestions.created", "sla.breached", "message.outbound"]
    emit(db, url, kinds, webhook_events=[])
    assert sorted(outbox_types(db)) == ["message.outbound", "sla.breached"]
    with db.session() as s:
        assert sorted(s.scalars(select(Event.type))) == sorted(kinds)  # GET /v1/events reads them all


def test_a_subscription_adds_the_informational_types_it_lists(db):
    url = "https://helpdesk.example/hooks"
    emit(
        db,
        url,
        ["message.received", "suggestions.created", "sla.at_risk"],
        webhook_events=["message.received"],
    )
    assert sorted(outbox_types(db)) == ["message.received", "sla.at_risk"]


def test_a_star_subscribes_to_every_event(db):
    emit(db, "https://helpdesk.example/hooks", list(EVENT_CLASSES), webhook_events=["*"])
    assert sorted(outbox_types(db)) == sorted(EVENT_CLASSES)


def test_a_transports_own_destination_is_not_filtered(db):
    # `deliver_to` (a channel's read receipts, a helpdesk's notes) is that destination's own subscription
    emit(db, "https://helpdesk.example/hooks", ["message.read"], webhook_events=[], deliver_to="wa-read:")
    [row] = outbox(db)
    assert row.url == "wa-read:" and row.receiver == "wa:" and row.priority == Priority.info


def test_an_unknown_event_type_in_the_subscription_stops_the_start_with_what_is_allowed(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        cache_dir=REPO_ROOT / "data" / "cache",
        llm_base_url=None,
        webhook_url="https://helpdesk.example/hooks",
        webhook_events=["message.recieved"],
        workers_enabled=True,
    )
    container = Container(settings)
    with pytest.raises(WebhookEventsInvalid) as caught:
        container.start(warm=False)
    container.close()
    assert "message.recieved" in caught.value.message and "message.received" in caught.value.message


def outbox_types(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(Event.type).join(WebhookDelivery, WebhookDelivery.event_id == Event.id)))


def test_receivers_are_scheme_host_and_port_or_the_transports_system():
    assert receiver_of("https://Helpdesk.example/hooks/a?x=1") == "https://helpdesk.example:443"
    assert receiver_of("http://127.0.0.1:8080/b") == "http://127.0.0.1:8080"
    assert receiver_of("chatwoot:") == receiver_of("chatwoot-note:") == "chatwoot:"
    assert receiver_of("wa-read:") == "wa:"


# -- several dispatchers, retries --------------------------------------------------------------------------


def test_two_dispatchers_on_one_database_deliver_each_event_exactly_once(any_db, db_url, receivers):
    hook = start(receivers, delay_s=0.01)
    other = start(receivers, delay_s=0.01)
    ids = emit(any_db, hook.url, ["message.received"] * 40) + emit(
        any_db, other.url, ["message.received"] * 20
    )
    pending = threading.Event()

    def done() -> bool:
        if len(hook.delivered()) + len(other.delivered()) >= len(ids):
            pending.set()
        return pending.is_set()

    second = Database(db_url)  # its own engine and connections, as another process would have
    pair = [
        dispatcher(any_db, concurrency=4, per_receiver=2),
        dispatcher(second, concurrency=4, per_receiver=2),
    ]
    threads = [threading.Thread(target=drive, args=(d, done, HANG_S * 3)) for d in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in pair:
        d.close()
    second.dispose()
    posts = hook.delivered() + other.delivered()
    per_event = Counter(p.event_id for p in posts)
    assert sorted(int(e) for e in per_event) == sorted(ids)
    assert set(per_event.values()) == {1}  # no event delivered twice
    assert len({p.delivery_id for p in posts}) == len(ids)
    rows = outbox(any_db)
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}


def test_a_retried_delivery_keeps_its_event_id_and_delivery_id(any_db, receivers):
    hook = start(receivers, fail_first=2)
    clock = ManualClock()
    [event_id] = emit(any_db, hook.url, ["message.outbound"], now=clock.now())
    d = dispatcher(any_db, clock, concurrency=4, per_receiver=4)
    try:
        for _ in range(3):
            assert d.run_once() == 1
            clock.advance(minutes=5)
    finally:
        d.close()
    assert [p.status for p in hook.posts] == [500, 500, 200]
    assert {p.event_id for p in hook.posts} == {str(event_id)}
    assert {p.body["id"] for p in hook.posts} == {event_id}
    assert len({p.delivery_id for p in hook.posts}) == 1
    [row] = outbox(any_db)
    assert (row.status, row.attempts) == ("delivered", 3)


# -- the worker ------------------------------------------------------------------------------------------


def test_the_worker_delivers_while_the_sla_scan_is_stuck_and_stop_joins_the_delivery_pool(
    db_url, tmp_path, app
):
    with harness(db_url, tmp_path, app.state.container) as h:
        assert h.receiver is not None
        workflow = h.container.workflow
        scanning, unstick = threading.Event(), threading.Event()

        def stuck_scan() -> int:
            scanning.set()
            unstick.wait(HANG_S)
            return 0

        workflow.scan_sla = stuck_scan  # type: ignore[method-assign]
        before = set(threading.enumerate())  # other tests of this process may have left their own pools
        worker = WorkflowWorker(workflow, interval_s=0.05)
        worker.start()
        try:
            assert scanning.wait(HANG_S)
            sug = h.ingest("Do you sell phone chargers?")["suggestions"][0]
            out = h.post(f"/v1/suggestions/{sug['id']}/approve", json={}).json()["message"]
            assert _wait(lambda: h.get(f"/v1/messages/{out['id']}").json()["status"] == "sent")
            assert not unstick.is_set()  # delivered while the SLA pass was still stuck
        finally:
            unstick.set()
            worker.stop()
        started_here = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        assert not [t for t in started_here if t.name.startswith("replydesk-deliver")]


def _wait(condition: Any, timeout_s: float = HANG_S) -> bool:
    return wait_until(condition, timeout_s)
