"""kitchen_sink rows reference their tenant (deleted with it)

Revision ID: kitchen_sink_0003
Revises: kitchen_sink_0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "kitchen_sink_0003"
down_revision: str | Sequence[str] | None = "kitchen_sink_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "core_0002"
"""The kernel's tenants table, which the foreign keys point to."""

TABLES = ("kitchen_sink_notes", "kitchen_sink_task_log")


def upgrade() -> None:
    for table in TABLES:
        # Rows of tenants deleted before this revision have nothing to point to any more.
        op.execute(f"DELETE FROM {table} WHERE tenant_id NOT IN (SELECT id FROM backplane_tenants)")
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                op.f(f"fk_{table}_tenant_id_backplane_tenants"),
                "backplane_tenants",
                ["tenant_id"],
                ["id"],
                ondelete="CASCADE",
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(
                op.f(f"fk_{table}_tenant_id_backplane_tenants"), type_="foreignkey"
            )
