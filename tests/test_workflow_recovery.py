"""Crash recovery and reads that never write (issue #12, items 5 and 9).

A crash is simulated by interrupting the process at the exact step where a real one could die: a
`SimulatedCrash` (a BaseException, like the KeyboardInterrupt or SystemExit that nothing may swallow) raised
by a pipeline that never returns, or by an event hook inside the approve transaction. Whatever that
interrupted transaction wrote is rolled back, as the database does for a killed process. The real SIGKILL
test of a live server is tests/test_recovery_kill.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, func, select, text

from service.auth.models import ApiKeyCreate, Principal
from service.clock import ManualClock
from service.db import Database
from service.db.engine import alembic_config
from service.db.models import Message, Suggestion
from service.pipeline.models import TriagePipelineRead
from service.settings import REPO_ROOT, Settings
from service.triage.models import TriageRequest
from service.workflow.ingest import claim_run, run_pipeline
from service.workflow.models import ApproveRequest, ContextFact, MessageCreate
from service.workflow.service import Workflow
from service.workflow.worker import WorkflowWorker
from tests.workflow_harness import Harness, harness, real_pipeline

STALE_S = 30.0  # the default REPLYDESK_PIPELINE_STALE_S


class SimulatedCrash(BaseException):
    """The process dies here."""


class PipelineThatDies:
    """A pipeline run that never finishes: the process is killed while triaging or drafting."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, request: TriageRequest, *, facts: Sequence[ContextFact] = ()) -> TriagePipelineRead:
        self.calls += 1
        raise SimulatedCrash("killed during the pipeline")


class CrashWhenEmitted:
    """An event hook (like the Prometheus counter) that kills the process when `event_type` is emitted, i.e.
    inside the transaction that emits it."""

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        self.armed = True

    def __call__(self, type_: str) -> None:
        if self.armed and type_ == self.event_type:
            self.armed = False
            raise SimulatedCrash(f"killed while emitting {type_}")


def _message(key: str, text: str = "Hi, where is my order 445566? It has not arrived") -> MessageCreate:
    return MessageCreate.model_validate(
        {
            "channel": "whatsapp",
            "conversation_external_id": f"conv-{key}",
            "customer": {"id": f"cust-{key}", "name": "Ana", "locale": "en-US"},
            "text": text,
            "sent_at": "2026-01-05T09:00:00Z",
            "idempotency_key": key,
        }
    )


def _resend(wf: Harness, key: str) -> dict:
    """The helpdesk re-sends the message over HTTP (same idempotency key)."""
    r = wf.post("/v1/messages", role="integration", json=_message(key).model_dump(mode="json"))
    assert r.status_code == 200, r.text
    return r.json()


def _stranded(wf: Harness, key: str) -> int:
    """Ingest `key` in a process that dies before its pipeline finishes; the stored message's id."""
    with pytest.raises(SimulatedCrash):
        wf.container.workflow.ingest(_message(key), pipeline=PipelineThatDies())
    with wf.container.db.session() as s:
        msg = s.scalars(select(Message).where(Message.idempotency_key == key)).one()
        assert msg.pipeline_status == "pending"
        return msg.id


def _suggestions(wf: Harness, message_id: int) -> int:
    with wf.container.db.session() as s:
        return int(s.scalar(select(func.count()).where(Suggestion.message_id == message_id)) or 0)


def _principal(wf: Harness, role: str = "agent") -> Principal:
    principal = wf.container.keys.authenticate(wf.keys[role])
    assert principal is not None
    return principal


# -- approve → send is one transaction -----------------------------------------------------------------------


def test_a_crash_while_queueing_the_reply_leaves_the_suggestion_pending_and_the_retry_sends_it_once(wf):
    sug = wf.ingest("Where is my order 112233?")["suggestions"][0]
    workflow = wf.container.workflow
    crash = CrashWhenEmitted("message.outbound")
    workflow.events.on_emit.append(crash)
    with pytest.raises(SimulatedCrash):
        workflow.approve(sug["id"], ApproveRequest(), _principal(wf))
    # Nothing of the interrupted approval survived: not the decision, not its event, not a message.
    assert wf.get(f"/v1/suggestions/{sug['id']}").json()["status"] == "pending"
    assert not [e for e in workflow.events.since(0) if e.type == "suggestion.approved"]

    retried = wf.post(f"/v1/suggestions/{sug['id']}/approve")
    assert retried.status_code == 200, retried.text
    assert retried.json()["suggestion"]["status"] == "sent"
    outbound = wf.get(f"/v1/messages?direction=outbound&conversation_id={sug['conversation_id']}").json()
    assert [m["id"] for m in outbound] == [retried.json()["message"]["id"]]


def test_retrying_an_approval_whose_answer_was_lost_returns_the_same_message_and_queues_nothing(wf):
    sug = wf.ingest("Where is my order 112233?")["suggestions"][0]
    first = wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"text": "Hi Ana, it ships today."})
    again = wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"text": "Hi Ana, it ships today."})
    assert first.status_code == again.status_code == 200
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    assert again.json()["suggestion"] == first.json()["suggestion"]
    outbound = wf.get(f"/v1/messages?direction=outbound&conversation_id={sug['conversation_id']}").json()
    assert len(outbound) == 1


def test_a_different_approval_of_a_sent_suggestion_is_still_a_conflict(wf):
    sug = wf.ingest("Where is my order 112233?")["suggestions"][0]
    assert wf.post(f"/v1/suggestions/{sug['id']}/approve").status_code == 200
    other_text = wf.post(f"/v1/suggestions/{sug['id']}/approve", json={"text": "Something else entirely"})
    assert other_text.status_code == 409 and other_text.json()["error"]["details"]["status"] == "sent"
    colleague = wf.container.keys.create(
        ApiKeyCreate(name="t-agent-2", role="agent", rate_limit="100000/minute")
    ).key
    by_colleague = wf.client.post(
        f"/v1/suggestions/{sug['id']}/approve", headers={"Authorization": f"Bearer {colleague}"}
    )
    assert by_colleague.status_code == 409


# -- stranded pipelines ------------------------------------------------------------------------------------


def test_a_message_whose_pipeline_died_is_rerun_by_the_worker_once_its_lease_runs_out(wf, app):
    message_id = _stranded(wf, "k-died")
    workflow = wf.container.workflow
    pipeline = real_pipeline(app.state.container)
    assert workflow.recover_pipelines(pipeline).rerun == 0  # within its lease it may still be running
    wf.clock.advance(seconds=STALE_S + 1)
    assert workflow.recover_pipelines(pipeline).rerun == 1
    assert workflow.recover_pipelines(pipeline).rerun == 0
    stored = _resend(wf, "k-died")
    assert stored["duplicate"] is True and stored["pipeline"]["status"] == "done"
    assert stored["suggestions"] and _suggestions(wf, message_id) == len(stored["suggestions"])


def test_a_resend_within_the_lease_says_the_suggestions_are_pending(wf):
    message_id = _stranded(wf, "k-early")
    wf.clock.advance(seconds=STALE_S / 2)
    early = _resend(wf, "k-early")
    assert early["duplicate"] is True and early["message"]["id"] == message_id
    assert early["pipeline"] == {"status": "pending", "error": None}
    assert early["suggestions"] == []


def test_a_resend_after_the_lease_reruns_the_stranded_pipeline_then_and_there(wf, app):
    message_id = _stranded(wf, "k-late")
    wf.clock.advance(seconds=STALE_S + 1)
    late = _resend(wf, "k-late")
    assert late["pipeline"]["status"] == "done" and late["suggestions"]
    assert wf.container.workflow.recover_pipelines(real_pipeline(app.state.container)).rerun == 0
    assert _resend(wf, "k-late")["suggestions"] == late["suggestions"]
    assert _suggestions(wf, message_id) == len(late["suggestions"])


def test_a_stranded_pipeline_is_claimed_by_one_worker_at_a_time(wf):
    message_id = _stranded(wf, "k-claim")
    ctx = wf.container.workflow.ctx
    wf.clock.advance(seconds=STALE_S + 1)
    now = wf.clock.now()
    with ctx.db.session() as s:
        assert claim_run(ctx, s, message_id, now, retry_failed=False) is True
    with ctx.db.session() as s:  # a second replica, same moment: the lease has moved on
        assert claim_run(ctx, s, message_id, now, retry_failed=False) is False
    wf.clock.advance(seconds=STALE_S + 1)  # that run died too: the next claim wins again
    with ctx.db.session() as s:
        assert claim_run(ctx, s, message_id, wf.clock.now(), retry_failed=False) is True


def test_two_runs_of_the_same_message_that_both_finish_store_its_suggestions_once(wf, app):
    message_id = _stranded(wf, "k-twice")
    ctx = wf.container.workflow.ctx
    pipeline = real_pipeline(app.state.container)
    run_pipeline(ctx, message_id, pipeline)  # a slow first run that finished after all...
    first = _suggestions(wf, message_id)
    run_pipeline(ctx, message_id, pipeline)  # ...and its re-run
    assert first > 0 and _suggestions(wf, message_id) == first


def test_a_message_that_kills_every_run_is_marked_failed_and_a_resend_retries_it(wf):
    message_id = _stranded(wf, "k-poison")  # run 1 of 3 (REPLYDESK_PIPELINE_MAX_ATTEMPTS)
    workflow = wf.container.workflow
    dies = PipelineThatDies()
    for _ in range(2):  # runs 2 and 3 die as well
        wf.clock.advance(seconds=STALE_S + 1)
        with pytest.raises(SimulatedCrash):
            workflow.recover_pipelines(dies)
    wf.clock.advance(seconds=STALE_S + 1)
    counts = workflow.recover_pipelines(dies)
    assert (counts.rerun, counts.gave_up, dies.calls) == (0, 1, 2)
    with wf.container.db.session() as s:
        msg = s.get(Message, message_id)
        assert msg is not None and msg.pipeline_status == "failed"
        assert (msg.pipeline_error or "").startswith("stranded: 3 runs never finished")
    retried = _resend(wf, "k-poison")  # an explicit re-send still tries again (here it succeeds)
    assert retried["pipeline"]["status"] == "done" and retried["suggestions"]


def test_the_worker_reruns_stranded_pipelines_as_soon_as_it_starts(wf, app):
    message_id = _stranded(wf, "k-start")
    wf.clock.advance(seconds=STALE_S + 1)
    wf.container.pipeline = real_pipeline(app.state.container)  # what the container's worker runs
    worker = WorkflowWorker(wf.container.workflow, interval_s=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _suggestions(wf, message_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert _suggestions(wf, message_id) > 0


def test_messages_left_pending_before_the_upgrade_are_rerun_by_the_first_worker_pass(tmp_path, app):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    with db.engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        for statement in OLD_ROWS:
            conn.execute(text(statement), {"t": "2026-01-05 09:00:00"})
    db.migrate()  # 0001 -> head
    settings = Settings(data_dir=tmp_path, cache_dir=REPO_ROOT / "data" / "cache", database_url=url)
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, 5, tzinfo=UTC))  # five seconds after it was stored
    workflow = Workflow(db, clock, settings, pipeline=real_pipeline(app.state.container))
    assert workflow.recover_pipelines().rerun == 1
    with db.session() as s:
        msg = s.get(Message, 1)
        assert msg is not None and msg.pipeline_status == "done" and msg.pipeline_attempts == 2
    db.dispose()


OLD_ROWS = [
    "INSERT INTO customers (id, channel, external_id, created_at) VALUES (1, 'sms', 'c', :t)",
    "INSERT INTO conversations (id, channel, external_id, customer_id, status, urgency, created_at,"
    " updated_at, extra) VALUES (1, 'sms', 'c', 1, 'open', 'normal', :t, :t, '{}')",
    "INSERT INTO messages (id, conversation_id, channel, direction, kind, text, attachments, status,"
    " created_at, pipeline_status) VALUES (1, 1, 'sms', 'inbound', 'customer', 'Where is my parcel?', '[]',"
    " 'received', :t, 'pending')",
]


# -- reads never write ---------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_wf(tmp_path, app) -> Iterator[tuple[Harness, Path]]:
    db_file = tmp_path / "replydesk.db"
    with harness(f"sqlite:///{db_file}", tmp_path, app.state.container) as h:
        yield h, db_file


def _short_busy_timeout(h: Harness) -> None:
    """Lock waits of 100 ms instead of 30 s, so a read that tried to write would fail at once (503)."""
    engine = h.container.db.engine
    event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=100"))
    engine.dispose()


def test_reads_answer_while_another_connection_holds_the_write_lock(sqlite_wf):
    h, db_file = sqlite_wf
    ingested = h.ingest("Can I get an invoice for my last order?")
    conv, message_id = ingested["conversation"]["id"], ingested["message"]["id"]
    h.clock.advance(minutes=90)  # past due for every urgency: a scan would write the breach now
    _short_busy_timeout(h)
    locker = sqlite3.connect(db_file, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long migration or backup would
    try:
        queue = h.get("/v1/queue")
        others = [
            h.get(path, role=role).status_code
            for path, role in [
                (f"/v1/conversations/{conv}", "agent"),
                (f"/v1/messages/{message_id}", "agent"),
                ("/v1/messages?direction=inbound", "agent"),
                (f"/v1/suggestions?conversation_id={conv}", "agent"),
                ("/v1/metrics/kpis", "evaluator"),
                ("/metrics", "evaluator"),
            ]
        ]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert queue.status_code == 200, queue.text
    assert queue.json()["items"][0]["state"] == "breached"  # computed from the stored due time
    assert others == [200] * len(others)
    workflow = h.container.workflow
    assert not [e for e in workflow.events.since(0) if e.type.startswith("sla.")]  # reads announce nothing
    assert workflow.scan_sla() == 1  # announcing is the worker's job
