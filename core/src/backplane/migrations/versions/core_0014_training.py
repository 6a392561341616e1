"""training: training runs of registered trainers

Revision ID: core_0014
Revises: core_0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "core_0014"
down_revision: str | Sequence[str] | None = "core_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNS = "backplane_training_runs"


def upgrade() -> None:
    op.create_table(
        RUNS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("trainer", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("progress", sa.String(length=40), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("version", sa.String(length=50), nullable=True),
        sa.Column("card", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f(f"fk_{RUNS}_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{RUNS}")),
    )
    with op.batch_alter_table(RUNS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{RUNS}_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_backplane_training_runs_model", ["tenant_id", "model", "created_at"], unique=False
        )
    enable_tenant_rls(op, RUNS)


def downgrade() -> None:
    disable_tenant_rls(op, RUNS)
    with op.batch_alter_table(RUNS, schema=None) as batch_op:
        batch_op.drop_index("ix_backplane_training_runs_model")
        batch_op.drop_index(batch_op.f(f"ix_{RUNS}_tenant_id"))
    op.drop_table(RUNS)
