"""Agent console: who a conversation is assigned to, and who has it open now (presence heartbeats).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_to", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("assigned_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_conversations_assigned", ["assigned_key_id"], unique=False)
    op.create_table(
        "conversation_viewers",
        sa.Column("conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_viewers_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("conversation_id", "key_id", name=op.f("pk_conversation_viewers")),
    )


def downgrade() -> None:
    op.drop_table("conversation_viewers")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_assigned")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("assigned_key_id")
        batch_op.drop_column("assigned_to")
