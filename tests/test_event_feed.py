"""The event feed behind the SSE streams (service/workflow/feed.py), as a replica sees it on a shared
database.

* An event whose transaction commits after a higher id committed is still sent, once, after the ones already
  sent (a plain `id > last` poll skips it for good); an id that never appears is given up after GAP_WAIT_S.
* A types filter neither creates gaps nor slows a stream behind a burst of other events.
* On PostgreSQL, an event committed by one app reaches an SSE stream opened on another app over the same
  database through NOTIFY (migration 0008's trigger), long before that app's poll interval; a killed
  listener connection reconnects and the streams re-read.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.auth.models import ApiKeyCreate
from service.container import Container
from service.db import Database
from service.db.models import Event
from service.workflow import feed
from service.workflow.events import EventLog
from service.workflow.feed import GAP_WAIT_S, GapSafeReader, follow
from service.workflow.models import EventRead
from tests.replica_harness import replica as replica_app

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# the db_url fixture's PostgreSQL case only (it fails, never skips, when the server is unreachable)
POSTGRES_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
STEP_TIMEOUT_S = 5.0  # a batch the feed owes comes within this (it polls every 0.02 s in these tests)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def add(db: Database, event_id: int | None = None, type_: str = "message.received") -> int:
    """Commit one event (with an explicit id: the order ids commit in is the test's to choose)."""
    with db.session() as s:
        event = Event(id=event_id, type=type_, payload={"n": event_id}, created_at=NOW)
        s.add(event)
        s.flush()
        return event.id


async def never_disconnected() -> bool:
    return False


def stream(db: Database, **kw) -> AsyncGenerator[list[EventRead]]:
    options = {"start": 0, "types": None, "poll_s": 0.02, "is_disconnected": never_disconnected, **kw}
    return follow(EventLog(db, None), **options)


async def next_batch(events: AsyncIterator[list[EventRead]]) -> list[int]:
    return [e.id for e in await asyncio.wait_for(anext(events), STEP_TIMEOUT_S)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_event_committed_after_a_higher_id_is_still_sent_once_after_it(db):
    """Commit order 2, 1, 3: the stream sends [2], then [1] (late), then [3], and 1 never again."""

    async def run() -> list[list[int]]:
        events = stream(db, max_wait_s=STEP_TIMEOUT_S)
        add(db, 2)
        batches = [await next_batch(events)]
        add(db, 1)  # the transaction that took id 1 commits only now
        batches.append(await next_batch(events))
        add(db, 3)
        batches.append(await next_batch(events))
        await events.aclose()
        return batches

    assert asyncio.run(run()) == [[2], [1], [3]]


@POSTGRES_ONLY
def test_a_transaction_that_took_its_id_first_and_commits_last_is_sent(db_url):
    """Two real sessions on PostgreSQL: A takes id n from the sequence and stays open, B takes n+1 and
    commits; the stream sends n+1, and n as soon as A commits."""
    db = Database(db_url)
    db.migrate()
    first_id = add(db)  # the stream starts after this one

    async def run() -> tuple[int, int, list[list[int]]]:
        events = stream(db, start=first_id, max_wait_s=STEP_TIMEOUT_S)
        with Session(db.engine) as a:
            slow = Event(type="message.received", payload={}, created_at=NOW)
            a.add(slow)
            a.flush()  # id taken, not committed
            slow_id = slow.id
            fast = add(db)
            batches = [await next_batch(events)]
            a.commit()
        batches.append(await next_batch(events))
        await events.aclose()
        return slow_id, fast, batches

    try:
        slow, fast, batches = asyncio.run(run())
    finally:
        db.dispose()
    assert fast == slow + 1
    assert batches == [[fast], [slow]]


@POSTGRES_ONLY
def test_a_stream_whose_listener_connection_is_killed_still_gets_the_next_event(db_url):
    """The listener's PostgreSQL session is terminated (a failover, a restart): it reconnects and wakes the
    streams, which re-read; a stream that polls only hourly still gets an event committed meanwhile."""
    db = Database(db_url)
    db.migrate()
    listener = feed.listener_for(db)
    assert listener is not None

    async def run() -> tuple[int, list[int]]:
        events = stream(db, start=None, poll_s=3600)
        first = asyncio.ensure_future(next_batch(events))
        await asyncio.to_thread(listener.connected.wait, STEP_TIMEOUT_S)
        with db.session() as s:
            s.execute(
                text(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and query like 'LISTEN%'"
                )
            )
        emitted = add(db)
        batch = await first
        await events.aclose()
        return emitted, batch

    try:
        emitted, batch = asyncio.run(run())
    finally:
        db.dispose()
    assert batch == [emitted]


def test_an_id_that_never_appears_is_given_up_after_the_gap_wait(db):
    """A rolled-back id is asked for during GAP_WAIT_S only; an event committed even later with that id is
    not sent to a stream that is past it (the documented bound)."""
    clock = FakeClock()
    reader = GapSafeReader(db, last=0, clock=clock)
    add(db, 2)
    assert [e.id for e in reader.read()] == [2]
    assert set(reader.gaps) == {1}
    clock.now += GAP_WAIT_S - 1
    assert reader.read() == [] and set(reader.gaps) == {1}
    clock.now += 2
    assert reader.read() == [] and reader.gaps == {}
    add(db, 1)
    assert reader.read() == []


def test_a_stream_opened_now_sends_an_event_in_flight_below_the_newest(db):
    """Ids 1 and 3 are committed when the stream opens (default start: the newest); 2 commits afterwards and
    is sent, 1 and 3 are not."""
    add(db, 1)
    add(db, 3)
    reader = GapSafeReader.open(db, start=None)
    assert reader.last == 3 and set(reader.gaps) == {2}
    add(db, 2)
    assert [e.id for e in reader.read()] == [2]
    assert reader.read() == []


def test_a_types_filter_sends_only_those_types_and_other_types_are_not_gaps(db):
    reader = GapSafeReader(db, last=0, types={"sla.breached"})
    add(db, 1, "message.received")
    add(db, 2, "sla.breached")
    assert [(e.id, e.type) for e in reader.read()] == [(2, "sla.breached")]
    assert reader.gaps == {}
    add(db, 4, "message.received")
    assert reader.read() == [] and set(reader.gaps) == {3}
    add(db, 3, "message.received")  # a late commit of another type: no longer missing, not sent
    assert reader.read() == [] and reader.gaps == {}


def test_a_types_filter_does_not_wait_a_poll_interval_per_page_of_other_events(db):
    """More than one read's worth of other events, then a wanted one: it comes without the stream sleeping
    its (here hour-long) poll interval between reads."""
    with db.session() as s:
        s.add_all(
            Event(id=i, type="message.received", payload={}, created_at=NOW)
            for i in range(1, feed.BATCH * 2 + 1)
        )
    wanted = add(db, feed.BATCH * 2 + 1, "sla.breached")

    async def run() -> list[int]:
        events = stream(db, types={"sla.breached"}, poll_s=3600, max_events=1)
        batch = await next_batch(events)
        await events.aclose()
        return batch

    assert asyncio.run(run()) == [wanted]


@contextmanager
def replica(db_url: str, data_dir: Path, **overrides: Any) -> Iterator[tuple[Container, TestClient]]:
    """One API replica (tests/replica_harness.py) whose client sends an agent key."""
    with replica_app(db_url, data_dir, **overrides) as (container, client):
        key = container.keys.create(ApiKeyCreate(name="sse", role="agent", rate_limit="1000/minute"))
        client.headers["Authorization"] = f"Bearer {key.key}"
        yield container, client


@POSTGRES_ONLY
def test_an_event_emitted_on_one_app_reaches_an_sse_stream_on_another(db_url, tmp_path: Path):
    """Two apps (two replicas) on one PostgreSQL database; B polls only every 30 s. An event emitted through
    A a second after B's stream opened arrives on B's `GET /v1/events` through LISTEN/NOTIFY, well before
    B's next poll."""
    poll_s = 30.0
    with (
        replica(db_url, tmp_path / "a") as (a, _),
        replica(db_url, tmp_path / "b", events_poll_s=poll_s) as (_, b_client),
    ):
        with a.db.session() as s:
            since = int(s.scalar(select(func.max(Event.id))) or 0)
        emitted: dict[str, float | int] = {}

        def emit_on_a() -> None:
            time.sleep(1.0)  # B's stream has read the log and is waiting by now
            with a.db.session() as s:
                event = a.workflow.events.emit(s, "test.replica", {"from": "a"}, now=NOW)
                s.flush()
                emitted["id"] = event.id
            emitted["at"] = time.monotonic()

        emitter = threading.Thread(target=emit_on_a)
        emitter.start()
        with b_client.stream(
            "GET", "/v1/events", params={"since": since, "max_events": 1, "max_wait_s": 60}
        ) as response:
            assert response.status_code == 200
            ids = [int(line[3:]) for line in response.iter_lines() if line.startswith("id:")]
        arrived = time.monotonic()
        emitter.join()
    assert ids == [emitted["id"]]
    assert arrived - emitted["at"] < poll_s / 3, "the event waited for B's poll: no NOTIFY wake-up"
