"""The delivery engine: each outbox row names its receiver (so deliveries are bounded per receiver) and its
priority (replies to customers first, then alerts, then informational events), and the due index orders
claims by priority.

Rows already in the table get their receiver from their URL (the same rule as
`service.workflow.webhooks.receiver_of`, written out here so this revision never changes with the code) and a
priority from their event's type.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_PORTS = {"http": 80, "https": 443}


def _receiver(url: str) -> str:
    if "://" not in url:
        return url.split(":", 1)[0].split("-", 1)[0] + ":"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receiver", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="2"))
    conn = op.get_bind()
    deliveries = sa.table(
        "webhook_deliveries",
        sa.column("url", sa.Text()),
        sa.column("receiver", sa.String()),
        sa.column("priority", sa.SmallInteger()),
        sa.column("event_id", sa.Integer()),
    )
    events = sa.table("events", sa.column("id", sa.Integer()), sa.column("type", sa.String()))
    for (url,) in conn.execute(sa.select(deliveries.c.url).distinct()).all():
        conn.execute(deliveries.update().where(deliveries.c.url == url).values(receiver=_receiver(url)))
    for priority, types in (
        (0, ["message.outbound"]),
        (1, ["sla.at_risk", "sla.breached", "message.failed"]),
    ):
        conn.execute(
            deliveries.update()
            .where(deliveries.c.event_id.in_(sa.select(events.c.id).where(events.c.type.in_(types))))
            .values(priority=priority)
        )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.alter_column("receiver", existing_type=sa.String(length=300), nullable=False)
        batch_op.alter_column("priority", existing_type=sa.SmallInteger(), server_default=None)
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "priority", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"])
        batch_op.drop_column("priority")
        batch_op.drop_column("receiver")
