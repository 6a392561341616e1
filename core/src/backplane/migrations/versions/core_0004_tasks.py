"""tasks: outbox and schedule runs

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0004"
down_revision: str | Sequence[str] | None = "core_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backplane_task_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("kwargs", sa.JSON(), nullable=False),
        sa.Column("context_tenant_id", sa.Uuid(), nullable=True),
        sa.Column("trace_context", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_task_outbox")),
    )
    with op.batch_alter_table("backplane_task_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_task_outbox_status"), ["status"], unique=False
        )

    op.create_table(
        "backplane_task_schedule_runs",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "job", "period_start", name=op.f("pk_backplane_task_schedule_runs")
        ),
    )


def downgrade() -> None:
    op.drop_table("backplane_task_schedule_runs")
    with op.batch_alter_table("backplane_task_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_task_outbox_status"))

    op.drop_table("backplane_task_outbox")
