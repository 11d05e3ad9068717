"""Growth: indexes that keep the KPIs, the helpdesk's pull of queued messages and the lookups by a
helpdesk's thread id flat as the history grows (issue #16, item 5; measured by `python -m bench.growth`).

- KPIs count what happened in a time window: conversations by first customer message and by resolution,
  SLA waits by start, answered surveys by answer time, decided suggestions by decision time. Each is a range
  on its own column; without these indexes every KPI request (and the console's one per day) read the whole
  table.
- `GET /v1/messages?status=queued` (helpdesks that pull) reads messages of one status in id order.
- A conversation by the helpdesk's thread id without its channel (`external_id` alone).
- Ingest answers with the message's drafts and the survey it answered: suggestions by message, surveys by
  the reply that answered them (without these, every ingest read all suggestions).
- The queue's unread counts: inbound messages no agent has read, per conversation (a small partial index;
  where a plan cannot use it, `ix_messages_conversation` answers as before).

`INDEXES` is read by `bench.growth` to measure the schema without them ("before") and with them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


class GrowthIndex(NamedTuple):
    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None  # a partial index's predicate (the same SQL on SQLite and PostgreSQL)


INDEXES: tuple[GrowthIndex, ...] = (
    GrowthIndex("ix_conversations_first_message", "conversations", ("first_customer_message_at",)),
    GrowthIndex("ix_conversations_resolved_at", "conversations", ("resolved_at",)),
    GrowthIndex("ix_conversations_external", "conversations", ("external_id",)),
    GrowthIndex("ix_sla_cycles_started", "sla_cycles", ("started_at",)),
    GrowthIndex("ix_surveys_answered", "surveys", ("answered_at",), "score IS NOT NULL"),
    GrowthIndex("ix_suggestions_decided", "suggestions", ("decided_at",), "decision IS NOT NULL"),
    GrowthIndex("ix_suggestions_message", "suggestions", ("message_id",)),
    GrowthIndex("ix_surveys_reply_message", "surveys", ("reply_message_id",), "reply_message_id IS NOT NULL"),
    GrowthIndex("ix_messages_status", "messages", ("status", "id")),
    GrowthIndex(
        "ix_messages_unread",
        "messages",
        ("conversation_id",),
        "direction = 'inbound' AND agent_read_at IS NULL",
    ),
)


def upgrade() -> None:
    for ix in INDEXES:
        where = None if ix.where is None else sa.text(ix.where)
        op.create_index(
            ix.name, ix.table, list(ix.columns), unique=False, sqlite_where=where, postgresql_where=where
        )


def downgrade() -> None:
    for ix in reversed(INDEXES):
        op.drop_index(ix.name, table_name=ix.table)
