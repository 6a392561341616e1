"""kitchen_sink task log (tenant-scoped)

Revision ID: kitchen_sink_0002
Revises: kitchen_sink_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls

revision: str = "kitchen_sink_0002"
down_revision: str | Sequence[str] | None = "kitchen_sink_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kitchen_sink_task_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kitchen_sink_task_log")),
    )
    op.create_index(
        op.f("ix_kitchen_sink_task_log_tenant_id"), "kitchen_sink_task_log", ["tenant_id"]
    )
    enable_tenant_rls(op, "kitchen_sink_task_log")


def downgrade() -> None:
    disable_tenant_rls(op, "kitchen_sink_task_log")
    op.drop_index(op.f("ix_kitchen_sink_task_log_tenant_id"), table_name="kitchen_sink_task_log")
    op.drop_table("kitchen_sink_task_log")
