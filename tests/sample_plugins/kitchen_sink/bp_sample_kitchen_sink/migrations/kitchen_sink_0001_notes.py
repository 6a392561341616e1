"""kitchen_sink notes table

Revision ID: kitchen_sink_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls

revision: str = "kitchen_sink_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("kitchen_sink",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kitchen_sink_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(length=500), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kitchen_sink_notes")),
    )
    op.create_index(op.f("ix_kitchen_sink_notes_tenant_id"), "kitchen_sink_notes", ["tenant_id"])
    enable_tenant_rls(op, "kitchen_sink_notes")


def downgrade() -> None:
    disable_tenant_rls(op, "kitchen_sink_notes")
    op.drop_index(op.f("ix_kitchen_sink_notes_tenant_id"), table_name="kitchen_sink_notes")
    op.drop_table("kitchen_sink_notes")
