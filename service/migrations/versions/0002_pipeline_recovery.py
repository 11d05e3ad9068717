"""Pipeline recovery: a lease and a run counter on messages, so a pipeline that never finished (the process
was killed between storing a message and storing its suggestions) is re-run by one worker, and a message
that keeps killing its runs is eventually marked failed.

Messages already `pending` when this runs are from before the upgrade: their lease is their creation time,
so the first worker pass re-runs them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pipeline_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pipeline_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(
            "ix_messages_pipeline", ["pipeline_status", "pipeline_lease_until"], unique=False
        )
    op.execute(
        "UPDATE messages SET pipeline_lease_until = created_at, pipeline_attempts = 1 "
        "WHERE pipeline_status = 'pending'"
    )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_pipeline")
        batch_op.drop_column("pipeline_attempts")
        batch_op.drop_column("pipeline_lease_until")
