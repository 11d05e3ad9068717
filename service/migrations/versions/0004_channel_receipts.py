"""Channels as the platforms send them: a failed message's channel error code, the message a message quotes,
and statuses kept until the helpdesk reports the message id they belong to.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("reply_to", sa.String(length=200), nullable=True))
    op.create_table(
        "pending_receipts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("channel_message_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_receipts")),
    )
    op.create_index("ix_pending_receipts_message", "pending_receipts", ["channel", "channel_message_id"])
    op.create_index("ix_pending_receipts_created", "pending_receipts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_pending_receipts_created", table_name="pending_receipts")
    op.drop_index("ix_pending_receipts_message", table_name="pending_receipts")
    op.drop_table("pending_receipts")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reply_to")
        batch_op.drop_column("error_code")
