"""Replicas starting at the same moment all migrate the same empty PostgreSQL database: they take turns (an
advisory lock held for the migration's transaction), so every one of them starts, on a schema made once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.db import Database
from service.errors import ReplyDeskError

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_replicas_migrating_an_empty_database_at_once_all_start_on_one_schema(db_url):
    replicas = 4
    barrier = threading.Barrier(replicas)
    errors: list[Exception] = []
    databases = [Database(db_url) for _ in range(replicas)]

    def start(db: Database) -> None:
        barrier.wait(timeout=30)
        try:
            db.migrate()
        except (SQLAlchemyError, ReplyDeskError) as exc:  # asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert errors == []
        heads = {db.current_revision() for db in databases}
        assert len(heads) == 1 and None not in heads
        with databases[0].engine.connect() as conn:
            versions = conn.execute(text("select count(*) from alembic_version")).scalar()
        assert versions == 1
    finally:
        for db in databases:
            db.dispose()
