"""Storage on SQLite and PostgreSQL: migrations build exactly the models' schema, are idempotent, keep times
in UTC, and the LLM call log lands in its table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from service.clock import ManualClock
from service.db import Base, Database
from service.db.engine import alembic_config
from service.db.llm_calls import LLMCallSink
from service.db.models import Customer, LLMCall
from service.drafting.llm import LLMCallLog
from service.errors import ServiceUnavailable


@pytest.mark.empty_db
def test_migrations_create_exactly_the_models_schema_and_are_idempotent(db_url):
    db = Database(db_url)
    db.migrate()
    db._migrated = False
    db.migrate()  # a second start is a no-op
    head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
    assert head is not None and db.current_revision() == head
    with db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.health()["status"] == "ok"
    db.dispose()


def test_times_come_back_aware_and_in_utc(db_url):
    db = Database(db_url)
    db.migrate()
    local = datetime(2026, 1, 5, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    with db.session() as s:
        s.add(Customer(channel="sms", external_id="+34600000000", created_at=local))
    with db.session() as s:
        got = s.scalars(select(Customer)).one().created_at
    assert got == local and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    db.dispose()


def test_llm_calls_are_stored_through_the_sink(db_url):
    db = Database(db_url)
    db.migrate()
    sink = LLMCallSink(db, ManualClock())
    sink(
        LLMCallLog(
            call_id="c1",
            exchange_id="x1",
            prompt_name="draft",
            prompt_version="v3",
            model="gpt-4o-mini",
            outcome="ok",
            latency_ms=812.5,
            prompt_tokens=420,
            completion_tokens=96,
            created_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        )
    )
    sink({"model": "local", "outcome": "timeout", "error": "read timeout", "latency_ms": 20000.0})
    with db.session() as s:
        rows = list(s.scalars(select(LLMCall).order_by(LLMCall.id)))
    assert [(r.model, r.prompt_name, r.prompt_version, r.total_tokens, r.outcome) for r in rows] == [
        ("gpt-4o-mini", "draft", "v3", 516, "ok"),
        ("local", None, None, None, "timeout"),
    ]
    assert rows[0].details["call_id"] == "c1" and rows[0].latency_ms == 812.5
    assert rows[1].error == "read timeout"
    db.dispose()


def test_an_unreachable_database_is_a_clear_503():
    db = Database("postgresql+psycopg://nobody:pw-secret@127.0.0.1:9/none?connect_timeout=1")
    with pytest.raises(ServiceUnavailable) as info:
        db.migrate()
    assert "unreachable" in info.value.message and "pw-secret" not in info.value.message
    assert db.health()["status"] == "unavailable"
