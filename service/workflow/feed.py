"""The event feed behind every SSE stream (GET /v1/events, the console's /console/events), correct on any
number of replicas sharing one PostgreSQL.

Two problems a plain `id > last` poll has there, and what this module does about them:

* **Late commits.** Event ids come from a sequence when the row is inserted, not when its transaction commits:
  a transaction holding id 41 may commit after another committed 42. A reader that saw 42 and moved on to
  `id > 42` would never send 41. `GapSafeReader` remembers the ids below its high-water mark that were
  missing when it read past them and asks for them again on every read for `GAP_WAIT_S`, so a late commit is
  still sent (after the events already sent: in order of arrival, never twice). Ids that never appear (rolled
  back: sequences are not transactional) are dropped after that time.
* **Wake-ups.** An event committed by replica A must reach an SSE client of replica B at once, not after a
  poll interval. Migration 0008 adds an AFTER INSERT trigger on `events` that runs
  `pg_notify('replydesk_events', '')`; PostgreSQL delivers it when (and only if) the inserting transaction
  commits, whichever process wrote the row. Each process keeps one LISTEN connection per database on a daemon
  thread while it has SSE clients, and wakes every follower's asyncio loop; followers still read every
  `poll_s` when no notification comes (a lost listener connection, SQLite), so nothing depends on the
  notifications for correctness, only for latency. SQLite (one process) keeps polling.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial

from anyio import to_thread
from sqlalchemy import func, select

from service.db import Database
from service.db.listen import libpq_dsn, listen
from service.db.models import Event
from service.workflow.events import EventLog, to_read
from service.workflow.models import EventRead

log = logging.getLogger("replydesk.events")

# How long an id missing below the high-water mark is asked for again. It is missing either because its
# transaction has not committed yet or because it rolled back. Transactions that emit events are short (a
# state change and its outbox row; no LLM or HTTP call runs inside one), so one still open 10 s after a later
# id committed is not expected; an event committed even later than that is not sent to streams that were
# already past it (GET /v1/events?since=… still returns it).
GAP_WAIT_S = 10.0
# At most this many missing ids are remembered (the highest ones: a transaction in flight holds an id near the
# top). Ids in flight at once are bounded by the open transactions of all replicas (tens); the rest are
# rolled-back ids, which never appear. It keeps each re-query's IN list small.
MAX_GAPS = 1000
# A stream opened at id N also watches the ids missing among the last START_LOOKBACK_IDS up to N: one of them
# may be a transaction in flight that commits after the stream opened (an id missing now was never visible,
# so it cannot have been sent before). 1,000 ids cover GAP_WAIT_S at 100 events/s, above the ~70/s measured.
START_LOOKBACK_IDS = 1000
BATCH = 100  # events read per query, as before
CHANNEL = "replydesk_events"  # the NOTIFY channel of migration 0008's trigger
# Reads a notification triggers are at least this far apart per stream: while events flow continuously (one
# NOTIFY per committing transaction, tens per second), each stream reads at most 20 times a second, in
# batches, for at most 50 ms of added latency.
NOTIFY_COALESCE_S = 0.05


class GapSafeReader:
    """Reads the event log forward from `last`, sending ids that commit late (below what it already read)
    when they appear. `read()` is blocking (call it in a thread); `clock` is injectable for tests."""

    def __init__(
        self,
        db: Database,
        *,
        last: int,
        types: set[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.last = last
        self.types = types
        self.clock = clock
        self.gaps: dict[int, float] = {}  # missing id -> clock time after which it is no longer asked for
        self.more = False  # the last read stopped at BATCH rows: read again without waiting

    @classmethod
    def open(
        cls,
        db: Database,
        *,
        start: int | None,
        types: set[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> GapSafeReader:
        """A reader after `start` (default: the newest event), watching the ids missing among the
        START_LOOKBACK_IDS before it."""
        with db.session() as s:
            last = start if start is not None else int(s.scalar(select(func.max(Event.id))) or 0)
            present = list(
                s.scalars(
                    select(Event.id)
                    .where(Event.id > last - START_LOOKBACK_IDS, Event.id <= last)
                    .order_by(Event.id)
                )
            )
        reader = cls(db, last=last, types=types, clock=clock)
        if present:
            # only below the highest id present: ids above it may simply not be taken yet
            reader._missing(present[0] + 1, present, clock())
        return reader

    def read(self) -> list[EventRead]:
        """Events that appeared since the last read: late commits first (oldest id first), then new ones in
        id order; each id once."""
        with self.db.session() as s:
            # gaps first: a row committed between the two queries is then either seen here next time or
            # above `last` now, never skipped
            late = (
                list(s.scalars(select(Event).where(Event.id.in_(sorted(self.gaps))).order_by(Event.id)))
                if self.gaps
                else []
            )
            new = list(s.scalars(select(Event).where(Event.id > self.last).order_by(Event.id).limit(BATCH)))
        self.more = len(new) == BATCH
        now = self.clock()
        for e in late:
            del self.gaps[e.id]
        if new:
            self._missing(self.last + 1, [e.id for e in new], now)
            self.last = new[-1].id
        self.gaps = {i: until for i, until in self.gaps.items() if until > now}
        if len(self.gaps) > MAX_GAPS:
            self.gaps = dict(sorted(self.gaps.items())[-MAX_GAPS:])
        return [to_read(e) for e in late + new if not self.types or e.type in self.types]

    def _missing(self, expected: int, ids: list[int], now: float) -> None:
        """Remember the ids from `expected` up to the last of `ids` (ascending) that are not among them."""
        for i in ids:
            for gap in range(max(expected, i - MAX_GAPS), i):
                self.gaps.setdefault(gap, now + GAP_WAIT_S)
            expected = i + 1


# -- wake-ups: one LISTEN connection per process and database
# ------------------------------------------------------


class Wakeup:
    """One follower's wake-up: set from the listener thread, awaited on the follower's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def set_threadsafe(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the follower's loop is closed; it unsubscribes when its generator closes
            pass

    async def wait(self, timeout_s: float) -> None:
        """Until woken or `timeout_s` passed."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
        except TimeoutError:
            pass


class Listener:
    """LISTEN replydesk_events on one database, on a daemon thread that runs while followers are subscribed
    (it reconnects after a lost connection and wakes everybody once connected, which covers events committed
    while it was not listening)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.subscribers: set[Wakeup] = set()
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, wakeup: Wakeup) -> None:
        with self._lock:
            self.subscribers.add(wakeup)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="replydesk-events-listen", daemon=True)
                self._thread.start()

    def unsubscribe(self, wakeup: Wakeup) -> None:
        with self._lock:
            self.subscribers.discard(wakeup)

    def _wake_all(self) -> None:
        with self._lock:
            subscribers = list(self.subscribers)
        for wakeup in subscribers:
            wakeup.set_threadsafe()

    def _still_wanted(self) -> bool:
        """False (and the thread slot freed) once nobody follows; checked under the lock `subscribe` takes."""
        with self._lock:
            if self.subscribers:
                return True
            self._thread = None
            return False

    def _run(self) -> None:
        listen(
            self.dsn,
            CHANNEL,
            on_notify=self._wake_all,
            keep_going=self._still_wanted,
            pause=time.sleep,
            connected=self.connected,
            log=log,
            unavailable="event notifications unavailable (%s); SSE streams poll until the listener "
            "reconnects",
            warning="events_listen_failed",
        )


_listeners: dict[str, Listener] = {}
_listeners_lock = threading.Lock()


def listener_for(db: Database) -> Listener | None:
    """This process's listener for `db`'s PostgreSQL database, or None for SQLite (followers poll)."""
    if db.dialect != "postgresql":
        return None
    dsn = libpq_dsn(db)
    with _listeners_lock:
        listener = _listeners.get(dsn)
        if listener is None:
            listener = _listeners[dsn] = Listener(dsn)
        return listener


@contextmanager
def _subscribed(db: Database) -> Iterator[Wakeup | None]:
    listener = listener_for(db)
    if listener is None:
        yield None
        return
    wakeup = Wakeup()
    listener.subscribe(wakeup)
    try:
        yield wakeup
    finally:
        listener.unsubscribe(wakeup)


async def follow(
    log: EventLog,
    *,
    start: int | None,
    types: set[str] | None,
    poll_s: float,
    is_disconnected: Callable[[], Awaitable[bool]],
    max_events: int | None = None,
    max_wait_s: float | None = None,
) -> AsyncGenerator[list[EventRead]]:
    """Batches of new events from after `start` (default: from now on), until the client leaves,
    `max_events` were yielded or nothing came for `max_wait_s`. Each batch is late commits then new events,
    each event once. Woken by NOTIFY on PostgreSQL (any replica's commit), else every `poll_s`. Every SSE
    stream (the API's and the console's) reads the log through this."""
    reader = await to_thread.run_sync(partial(GapSafeReader.open, log.db, start=start, types=types))
    sent = 0
    idle_since = time.monotonic()
    with _subscribed(log.db) as wakeup:
        while True:
            if wakeup is not None:
                wakeup.event.clear()  # before reading: a commit during the read wakes the next wait at once
            batch = await to_thread.run_sync(reader.read)
            read_at = time.monotonic()
            if max_events is not None:
                batch = batch[: max_events - sent]
            if batch:
                sent += len(batch)
                idle_since = time.monotonic()
                yield batch
                if max_events is not None and sent >= max_events:
                    return
                continue
            if reader.more:  # a full read of events of other types: the wanted ones may follow
                continue
            if max_wait_s is not None and time.monotonic() - idle_since >= max_wait_s:
                return
            if await is_disconnected():
                return
            if wakeup is None:
                await asyncio.sleep(poll_s)
            else:
                await wakeup.wait(poll_s)
                await asyncio.sleep(max(0.0, read_at + NOTIFY_COALESCE_S - time.monotonic()))
