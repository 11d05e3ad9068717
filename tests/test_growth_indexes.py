"""Growth indexes (migrations 0006 and 0010, issue #16 item 5): they exist after migrating SQLite and
PostgreSQL, each revision goes down and up again, and on PostgreSQL the queue, a conversation, the KPIs, the
helpdesk's pull of queued messages and the lookup by a helpdesk's thread id can use them; the KPIs' SLA and
decision reads are answered from their indexes alone, and the SLA read looks up the intents of the window's
conversations only. The plans are read with
`enable_seqscan = off` on a small seeded database, so these tests are about whether an index is usable by the
query the service sends, not about timing (`python -m bench.growth` measures that)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine

from bench.growth import GROWTH_REVISION, GROWTH_REVISIONS, growth_migration, head_growth_indexes, seed
from service.db import Database
from service.db.engine import alembic_config


def _indexes(db: Database) -> dict[str, dict[str, Any]]:
    with db.engine.connect() as conn:
        insp = inspect(conn)
        return {
            str(ix["name"]): dict(ix)
            for table in insp.get_table_names()
            for ix in insp.get_indexes(table)
            if ix["name"]
        }


def _alembic(db: Database, action: str, target: str) -> None:
    with db.engine.begin() as conn:
        cfg = alembic_config(db.url)
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_every_growth_index_exists_after_migrating_with_its_columns_and_predicate(db_url):
    db = Database(db_url)
    db.migrate()
    found = _indexes(db)
    for ix in head_growth_indexes(db.url):
        assert ix.name in found, f"{ix.name} is missing on {db.dialect}"
        assert tuple(found[ix.name]["column_names"]) == ix.columns
        predicate = found[ix.name].get("dialect_options", {}).get(f"{db.dialect}_where")
        if ix.where is None:
            assert predicate is None
        else:
            # PostgreSQL gives the predicate back in its own words (casts, parentheses): compare the names
            assert predicate is not None
            for word in ("direction", "inbound", "agent_read_at", "decision", "score", "reply_message_id"):
                assert (word in str(predicate)) == (word in ix.where)
    # 0010's covering indexes took over two of 0006's: those are gone
    assert not {ix.name for ix in growth_migration(db.url, "0010").REPLACES} & set(found)
    db.dispose()


@pytest.mark.empty_db
@pytest.mark.parametrize("revision", GROWTH_REVISIONS)
def test_growth_revision_goes_down_and_up_again(db_url, revision):
    db = Database(db_url)
    db.migrate()
    module = growth_migration(db.url, revision)
    _alembic(db, "downgrade", module.down_revision)
    assert db.current_revision() == module.down_revision
    names = {ix.name for ix in module.INDEXES}
    assert not names & set(_indexes(db))
    replaced = {ix.name for ix in getattr(module, "REPLACES", ())}
    assert replaced <= set(_indexes(db))  # what the revision took over is back
    _alembic(db, "upgrade", "head")
    assert {ix.name for ix in head_growth_indexes(db.url)} <= set(_indexes(db))
    assert not replaced & set(_indexes(db))
    assert ScriptDirectory.from_config(alembic_config(db.url)).get_revision(GROWTH_REVISION) is not None
    db.dispose()


# -- PostgreSQL: the service's own queries can use the indexes
# -------------------------------------------------------------------------------------


@contextmanager
def _recording(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the app sends meanwhile, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def _plans(dsn: str, statements: list[tuple[str, Any]], *off: str) -> str:
    """The plans of these statements with sequential scans (and the `off` plan types) priced out (one text
    to search)."""
    out = []
    with psycopg.connect(dsn) as conn:
        for kind in ("seqscan", *off):
            conn.execute(f"SET enable_{kind} = off")
        for sql, params in statements:
            out += [row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall()]
    return "\n".join(out)


@pytest.fixture
def seeded(wf, db_url):
    """The workflow app on a fresh PostgreSQL database with 300 conversations of the benchmark's shapes
    (open and resolved, read and unread, drafts decided and pending, SLA waits, surveys), analysed."""
    from sqlalchemy.engine import make_url

    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    seed(db_url, 300, wf.clock.now(), log=lambda _msg: None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # the visibility map, as autovacuum keeps it: index-only scans
    return wf, dsn


def _route_plans(seeded, *paths: str, off: tuple[str, ...] = ()) -> str:
    wf, dsn = seeded
    with _recording(wf.container.db.engine) as seen:
        for path in paths:
            r = wf.get(path, role="admin")
            assert r.status_code == 200, r.text
    assert seen
    return _plans(dsn, seen, *off)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_kpis_read_each_time_window_through_its_index(seeded):
    plans = _route_plans(seeded, "/v1/metrics/kpis")
    for name in (
        "ix_conversations_first_message",
        "ix_conversations_resolved_at",
        "ix_sla_cycles_window",
        "ix_surveys_answered",
        "ix_suggestions_decisions",
    ):
        assert name in plans, plans


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_kpis_sla_waits_and_decisions_are_read_from_their_indexes_alone(seeded):
    """The indexes hold every column these reads take: among index paths (a bitmap scan would read the table
    pages), the planner answers from the index alone."""
    plans = _route_plans(seeded, "/v1/metrics/kpis", off=("bitmapscan",))
    assert "Index Only Scan using ix_sla_cycles_window" in plans, plans
    assert "Index Only Scan using ix_suggestions_decisions" in plans, plans


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_kpis_sla_read_looks_up_the_intents_of_the_windows_conversations_only(seeded):
    """With the planner's own choices (sequential scans allowed): over the last 6 hours of a day and a half,
    the SLA read reaches conversations by primary key, once per conversation with a counted wait in the
    window, instead of hashing every conversation."""
    wf, dsn = seeded
    now = wf.clock.now()
    start = now - timedelta(hours=6)
    with _recording(wf.container.db.engine) as seen:
        r = wf.get(
            "/v1/metrics/kpis", role="admin", params={"from": start.isoformat(), "to": now.isoformat()}
        )
        assert r.status_code == 200, r.text
    (sql, params), *_ = [(q, p) for q, p in seen if "FROM sla_cycles" in q]
    with psycopg.connect(dsn) as conn:

        def one(query: str, args: Any) -> Any:
            row = conn.execute(query, args).fetchone()
            assert row is not None
            return row[0]

        (plan,) = one("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        in_window = one(
            "SELECT count(DISTINCT conversation_id) FROM sla_cycles WHERE started_at >= %s "
            "AND started_at < %s AND (responded_at IS NOT NULL OR due_at < %s)",
            (start, now, now),
        )
        total = one("SELECT count(*) FROM conversations", ())
    reads = [n for n in _nodes(plan["Plan"]) if n.get("Relation Name") == "conversations"]
    assert reads and all(
        n["Node Type"] == "Index Scan" and n["Index Name"] == "pk_conversations" for n in reads
    )
    looked_up = sum(n["Actual Rows"] * n["Actual Loops"] for n in reads)
    assert 0 < looked_up == in_window < total / 2


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_queue_ranks_open_conversations_and_counts_unread_messages_through_indexes(seeded):
    plans = _route_plans(seeded, "/v1/queue", "/v1/queue?assigned=unassigned")
    assert "ix_conversations_status" in plans
    assert "ix_messages_unread" in plans
    assert "ix_suggestions_conversation" in plans


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_conversation_reads_its_thread_through_the_conversation_indexes(seeded):
    plans = _route_plans(seeded, "/v1/conversations/7", "/v1/conversations/250")
    for name in ("ix_messages_conversation", "ix_suggestions_conversation", "ix_surveys_conversation"):
        assert name in plans, plans


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_pull_of_queued_messages_and_the_thread_id_lookup_use_their_indexes(seeded):
    plans = _route_plans(seeded, "/v1/messages?direction=outbound&status=queued&limit=100")
    assert "ix_messages_status" in plans
    wf, dsn = seeded
    with _recording(wf.container.db.engine) as seen:
        assert wf.container.workflow.conversation_id_by_external("conv-12") == 12
    assert "ix_conversations_external" in _plans(dsn, seen)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_ingest_reads_the_new_messages_drafts_and_survey_through_indexes(seeded):
    wf, dsn = seeded
    with _recording(wf.container.db.engine) as seen:
        wf.ingest(
            "Where is my order A12345?", conversation="conv-3", customer="cust-growth", channel="webchat"
        )
    plans = _plans(dsn, seen)
    assert "ix_suggestions_message" in plans
    assert "ix_surveys_reply_message" in plans
