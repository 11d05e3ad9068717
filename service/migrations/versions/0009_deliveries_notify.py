"""Outbox wake-ups on every worker: on PostgreSQL, an insert into `webhook_deliveries` sends
`NOTIFY replydesk_deliveries`, delivered when (and only if) the inserting transaction commits, whichever
process wrote the row. Every process that runs the delivery loop listens (service/workflow/worker.py), so an
approved reply committed by an API replica is claimed by a `replydesk worker` at once instead of after its
poll interval. One notification per statement with an empty payload (PostgreSQL folds identical ones within a
transaction; the loop claims the rows itself). Only inserts make a row due at once: a retry's
`next_attempt_at` lies ahead and an expired lease is found by the poll. Nothing on SQLite (one process; the
in-process wake-up covers it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-15
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION replydesk_deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('replydesk_deliveries', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries "
        "FOR EACH STATEMENT EXECUTE FUNCTION replydesk_deliveries_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS webhook_deliveries_notify ON webhook_deliveries")
    op.execute("DROP FUNCTION IF EXISTS replydesk_deliveries_notify()")
