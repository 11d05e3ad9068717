"""The delivery loop is woken when an outbox row commits, not when its poll interval comes round (issue #16:
an approved reply must reach the helpdesk within a second under load).

* In the process that committed the row: the event log's after-commit wake-up (SQLite and PostgreSQL).
* In any other process on the same PostgreSQL (an API replica approved, a `replydesk worker` delivers): the
  `NOTIFY replydesk_deliveries` of migration 0009, on the worker's own LISTEN connection, which reconnects
  when that connection is lost.

Every worker here polls only once a minute (`POLL_S`), so a reply delivered within `WAKE_BOUND_S` was
delivered because something woke the loop. The bound is generous (a loaded 2-core machine); it checks that
the wake-up happens, not how fast it is (bench/deliveries.py measures that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.db import Database
from service.workflow.service import Workflow
from service.workflow.worker import DELIVERY_CHANNEL, WorkflowWorker
from tests.workflow_harness import Harness, harness, wait_until

POLL_S = 60.0  # the workers' poll interval: far longer than any wait below
WAKE_BOUND_S = 10.0  # a woken loop delivers well within this; an unwoken one waits POLL_S
HANG_S = 20.0  # only a hang takes this long
SETTLE_S = 0.5  # lets a freshly started loop finish its first (empty) pass and go to sleep


@contextmanager
def running(worker: WorkflowWorker) -> Iterator[WorkflowWorker]:
    """The worker's loops, started and idle: on PostgreSQL its listener is connected, and the loop has
    finished the pass that the start (and the connection) triggered, so it sleeps until woken or POLL_S."""
    worker.start()
    try:
        if worker.workflow.db.dialect == "postgresql":
            assert worker.notifications is not None
            assert worker.notifications.connected.wait(HANG_S)
        time.sleep(SETTLE_S)
        yield worker
    finally:
        worker.stop()


def approve_first_draft(h: Harness, conversation: str) -> int:
    """Ingest a message and approve its first draft; the outbound message's id."""
    sug = h.ingest("Do you sell phone chargers?", conversation=conversation)["suggestions"][0]
    r = h.post(f"/v1/suggestions/{sug['id']}/approve", json={})
    assert r.status_code == 200, r.text
    return int(r.json()["message"]["id"])


def sent(h: Harness, message_id: int) -> Callable[[], bool]:
    return lambda: h.get(f"/v1/messages/{message_id}").json()["status"] == "sent"


def test_an_approved_reply_is_delivered_at_once_by_a_worker_that_polls_once_a_minute(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container) as h:
        assert h.receiver is not None
        with running(WorkflowWorker(h.container.workflow, interval_s=POLL_S)):
            for n in range(2):  # the second reply checks the loop went back to sleep and was woken again
                message_id = approve_first_draft(h, f"wake-{n}")
                assert wait_until(sent(h, message_id), WAKE_BOUND_S)
                time.sleep(SETTLE_S)
        assert [r.body["type"] for r in h.receiver.of_type("message.outbound")] == ["message.outbound"] * 2


def _worker_process(h: Harness, db_url: str) -> tuple[Workflow, Database]:
    """Another process's view of the same database: its own engine, event log (and so its own in-process
    wake-up event, which the API's commits never set) and dispatcher, with the API's settings."""
    db = Database(db_url)
    api = h.container.workflow
    return Workflow(db, h.clock, h.container.settings, pipeline=api.pipeline), db


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_reply_approved_on_an_api_replica_wakes_the_delivery_loop_of_another_worker(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container) as h:
        assert h.receiver is not None
        workflow, db = _worker_process(h, db_url)
        try:
            with running(WorkflowWorker(workflow, interval_s=POLL_S)):
                assert workflow.events is not h.container.workflow.events
                message_id = approve_first_draft(h, "replica-1")
                assert wait_until(sent(h, message_id), WAKE_BOUND_S)
        finally:
            db.dispose()
        assert len(h.receiver.of_type("message.outbound")) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_worker_whose_listening_connection_is_dropped_listens_again_and_is_woken_again(
    db_url, tmp_path, app
):
    with harness(db_url, tmp_path, app.state.container) as h:
        workflow, db = _worker_process(h, db_url)
        dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with running(WorkflowWorker(workflow, interval_s=POLL_S)) as worker:
                notifications = worker.notifications
                assert notifications is not None
                with psycopg.connect(dsn, autocommit=True) as admin:
                    row = admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
                        (f"LISTEN {DELIVERY_CHANNEL}",),
                    ).fetchone()
                    assert row is not None, "the worker listens on its own connection"
                    admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                assert wait_until(lambda: not notifications.connected.is_set(), HANG_S)
                assert notifications.connected.wait(HANG_S)  # reconnected
                time.sleep(SETTLE_S)
                message_id = approve_first_draft(h, "relisten-1")
                assert wait_until(sent(h, message_id), WAKE_BOUND_S)
        finally:
            db.dispose()


def test_stopping_the_worker_stops_its_listener(db_url, tmp_path, app):
    with harness(db_url, tmp_path, app.state.container) as h:
        before = set(threading.enumerate())
        with running(WorkflowWorker(h.container.workflow, interval_s=POLL_S)) as worker:
            listens = worker.notifications is not None
            assert listens == (h.container.db.dialect == "postgresql")  # SQLite: one process, nothing to hear
        left: list[Any] = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        assert not [t for t in left if t.name.startswith("replydesk-deliveries")]
