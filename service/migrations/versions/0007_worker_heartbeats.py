"""Replicas: one heartbeat row per process running the background loops, and at most one survey per resolution
of a conversation (two workers resolving or scanning at once cannot both queue one).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
    )
    op.create_index("ix_worker_heartbeats_seen", "worker_heartbeats", ["last_seen_at"])
    # existing surveys keep NULL (NULLs never collide); new ones carry `survey:<conversation>:<opened_at>`
    # (a unique index, not a constraint: SQLite adds it in place, without rebuilding the table)
    op.add_column("surveys", sa.Column("dedupe_key", sa.String(length=200), nullable=True))
    op.create_index("ix_surveys_dedupe_key", "surveys", ["dedupe_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_surveys_dedupe_key", table_name="surveys")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_column("dedupe_key")
    op.drop_index("ix_worker_heartbeats_seen", table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
