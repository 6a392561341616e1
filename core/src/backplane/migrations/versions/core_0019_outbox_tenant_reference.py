"""tasks: the outbox's context tenant references the tenant (ON DELETE CASCADE), indexed

A task enqueued for a tenant by a transaction still in flight when the tenant is deleted was
left behind, naming a tenant that no longer exists. With the reference, the deletion waits for
such a transaction and deletes its task with the tenant, or the late insert is refused. Tasks
already naming a deleted tenant (left by that race) are deleted first.

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

TABLE = "backplane_task_outbox"


def upgrade() -> None:
    outbox = sa.table(TABLE, sa.column("context_tenant_id", sa.Uuid()))
    tenants = sa.table("backplane_tenants", sa.column("id", sa.Uuid()))
    op.execute(
        sa.delete(outbox).where(
            outbox.c.context_tenant_id.is_not(None),
            outbox.c.context_tenant_id.not_in(sa.select(tenants.c.id)),
        )
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f(f"ix_{TABLE}_context_tenant_id"), ["context_tenant_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f(f"fk_{TABLE}_context_tenant_id_backplane_tenants"),
            "backplane_tenants",
            ["context_tenant_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f(f"fk_{TABLE}_context_tenant_id_backplane_tenants"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f(f"ix_{TABLE}_context_tenant_id"))
