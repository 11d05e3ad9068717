"""Server-sent events on every replica: on PostgreSQL, an insert into `events` sends
`NOTIFY replydesk_events` (delivered when, and only if, the inserting transaction commits, whichever process
wrote the row), which every process's SSE feed listens to (service/workflow/feed.py). One notification per
statement, with an empty payload: PostgreSQL folds identical ones within a transaction, and the listeners only
need a wake-up (they read the rows themselves). Nothing on SQLite (one process; its streams poll).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION replydesk_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('replydesk_events', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION replydesk_events_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS replydesk_events_notify()")
