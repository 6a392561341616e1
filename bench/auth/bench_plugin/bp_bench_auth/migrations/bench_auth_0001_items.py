"""bench_auth items table

Revision ID: bench_auth_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls

revision: str = "bench_auth_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("bench_auth",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bench_auth_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bench_auth_items")),
    )
    op.create_index(
        op.f("ix_bench_auth_items_tenant_id"), "bench_auth_items", ["tenant_id"], unique=False
    )
    enable_tenant_rls(op, "bench_auth_items")


def downgrade() -> None:
    disable_tenant_rls(op, "bench_auth_items")
    op.drop_index(op.f("ix_bench_auth_items_tenant_id"), table_name="bench_auth_items")
    op.drop_table("bench_auth_items")
