"""Growth, continued: the KPIs' two largest reads answered from their indexes alone (issue #16, item 5;
measured by `python -m bench.growth`).

A 30-day window holds about 30,000 SLA waits and 27,000 decided drafts whatever the history; 0006's
indexes on `sla_cycles.started_at` and `suggestions.decided_at` found them, but each row then cost a read of
its table page (one page per row: the rows of a window are spread over the conversations' pages). These
indexes carry the columns the KPI reads take (`service/workflow/kpis.py`), so PostgreSQL answers with an
index-only scan and SQLite with a covering index; they replace 0006's two (the leading column is the same,
so every range on the time column still has its index).

- `ix_sla_cycles_window`: waits by start, with the conversation (for its intent), due time, response and
  `met`.
- `ix_suggestions_decisions`: decided drafts by decision time (partial, as 0006's), with the decision,
  intent and edit distance.

`INDEXES` and `REPLACES` are read by `bench.growth` (the schema "before" has neither these nor 0006's).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


class GrowthIndex(NamedTuple):  # the shape of 0006's
    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None  # a partial index's predicate (the same SQL on SQLite and PostgreSQL)


INDEXES: tuple[GrowthIndex, ...] = (
    GrowthIndex(
        "ix_sla_cycles_window",
        "sla_cycles",
        ("started_at", "conversation_id", "due_at", "responded_at", "met"),
    ),
    GrowthIndex(
        "ix_suggestions_decisions",
        "suggestions",
        ("decided_at", "decision", "intent", "edit_distance"),
        "decision IS NOT NULL",
    ),
)
# 0006's indexes these take over, as 0006 made them (downgrade puts them back)
REPLACES: tuple[GrowthIndex, ...] = (
    GrowthIndex("ix_sla_cycles_started", "sla_cycles", ("started_at",)),
    GrowthIndex("ix_suggestions_decided", "suggestions", ("decided_at",), "decision IS NOT NULL"),
)


def _create(ix: GrowthIndex) -> None:
    where = None if ix.where is None else sa.text(ix.where)
    op.create_index(
        ix.name, ix.table, list(ix.columns), unique=False, sqlite_where=where, postgresql_where=where
    )


def upgrade() -> None:
    for ix in INDEXES:
        _create(ix)
    for ix in REPLACES:
        op.drop_index(ix.name, table_name=ix.table)


def downgrade() -> None:
    for ix in REPLACES:
        _create(ix)
    for ix in reversed(INDEXES):
        op.drop_index(ix.name, table_name=ix.table)
