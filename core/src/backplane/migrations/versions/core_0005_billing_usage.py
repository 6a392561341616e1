"""billing: usage events, counters, entitlements

Revision ID: core_0005
Revises: core_0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "core_0005"
down_revision: str | Sequence[str] | None = "core_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("backplane_usage_events", "backplane_usage_counters", "backplane_entitlements")


def upgrade() -> None:
    op.create_table(
        "backplane_entitlements",
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_entitlements_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "meter", name=op.f("pk_backplane_entitlements")),
    )
    with op.batch_alter_table("backplane_entitlements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_entitlements_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_usage_counters",
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_usage_counters_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "meter", "period_start", name=op.f("pk_backplane_usage_counters")
        ),
    )
    with op.batch_alter_table("backplane_usage_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_usage_counters_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_usage_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_usage_events_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_usage_events")),
        sa.UniqueConstraint(
            "tenant_id", "transaction_id", name=op.f("uq_backplane_usage_events_tenant_id")
        ),
    )
    with op.batch_alter_table("backplane_usage_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_usage_events_meter"), ["meter"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_usage_events_tenant_id"), ["tenant_id"], unique=False
        )

    for table in TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(op, table)
    with op.batch_alter_table("backplane_usage_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_usage_events_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_backplane_usage_events_meter"))

    op.drop_table("backplane_usage_events")
    with op.batch_alter_table("backplane_usage_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_usage_counters_tenant_id"))

    op.drop_table("backplane_usage_counters")
    with op.batch_alter_table("backplane_entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_entitlements_tenant_id"))

    op.drop_table("backplane_entitlements")
