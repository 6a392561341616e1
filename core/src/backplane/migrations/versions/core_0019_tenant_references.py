"""tenant references: the task outbox's context tenant and a login session's active tenant
reference the tenant (ON DELETE CASCADE), indexed

A task enqueued (or a refresh token rotated) for a tenant by a transaction still in flight when
the tenant is deleted was left behind, naming a tenant that no longer exists. With the
reference, the deletion waits for such a transaction and deletes its row with the tenant, or
the late insert is refused. Rows already naming a deleted tenant (left by that race) are
deleted first.

Revision ID: core_0019
Revises: core_0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0019"
down_revision: str | Sequence[str] | None = "core_0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCES = (
    ("backplane_task_outbox", "context_tenant_id"),
    ("backplane_refresh_tokens", "active_tenant_id"),
)


def upgrade() -> None:
    tenants = sa.table("backplane_tenants", sa.column("id", sa.Uuid()))
    for table, column in REFERENCES:
        rows = sa.table(table, sa.column(column, sa.Uuid()))
        op.execute(
            sa.delete(rows).where(
                rows.c[column].is_not(None), rows.c[column].not_in(sa.select(tenants.c.id))
            )
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_{column}_backplane_tenants"),
                "backplane_tenants",
                [column],
                ["id"],
                ondelete="CASCADE",
            )


def downgrade() -> None:
    for table, column in reversed(REFERENCES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_{column}_backplane_tenants"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
