"""billing: plans, entitlements, charges, subscriptions, invoices, usage roll-ups

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "core_0007"
down_revision: str | Sequence[str] | None = "core_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "backplane_subscriptions",
    "backplane_invoices",
    "backplane_invoice_lines",
    "backplane_usage_rollups",
    "backplane_usage_distinct",
    "backplane_quota_notices",
)
"""Plans, their entitlements and charges are global (the catalogue every tenant reads)."""


def upgrade() -> None:
    op.create_table(
        "backplane_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=10), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("self_service", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_backplane_plans_code")),
    )
    op.create_table(
        "backplane_invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=60), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=50), nullable=True),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_invoices_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_invoices")),
        sa.UniqueConstraint(
            "tenant_id", "period_start", name=op.f("uq_backplane_invoices_tenant_id")
        ),
    )
    with op.batch_alter_table("backplane_invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_invoices_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_plan_charges",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["backplane_plans.id"],
            name=op.f("fk_backplane_plan_charges_plan_id_backplane_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "meter", name=op.f("pk_backplane_plan_charges")),
    )
    op.create_table(
        "backplane_plan_entitlements",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["backplane_plans.id"],
            name=op.f("fk_backplane_plan_entitlements_plan_id_backplane_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "plan_id", "kind", "key", name=op.f("pk_backplane_plan_entitlements")
        ),
    )
    op.create_table(
        "backplane_quota_notices",
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_quota_notices_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "meter", "period_start", name=op.f("pk_backplane_quota_notices")
        ),
    )
    with op.batch_alter_table("backplane_quota_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_quota_notices_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["backplane_plans.id"],
            name=op.f("fk_backplane_subscriptions_plan_id_backplane_plans"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_subscriptions_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_subscriptions")),
    )
    with op.batch_alter_table("backplane_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backplane_subscriptions_open",
            ["tenant_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_subscriptions_plan_id"), ["plan_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_subscriptions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_usage_distinct",
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("group_key", sa.String(length=500), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_usage_distinct_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "meter",
            "day",
            "group_key",
            "value",
            name=op.f("pk_backplane_usage_distinct"),
        ),
    )
    with op.batch_alter_table("backplane_usage_distinct", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_usage_distinct_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_usage_rollups",
        sa.Column("meter", sa.String(length=100), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("group_key", sa.String(length=500), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=True),
        sa.Column("latest", sa.Float(), nullable=True),
        sa.Column("latest_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_usage_rollups_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "meter", "hour", "group_key", name=op.f("pk_backplane_usage_rollups")
        ),
    )
    with op.batch_alter_table("backplane_usage_rollups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_usage_rollups_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_invoice_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("plan_code", sa.String(length=63), nullable=False),
        sa.Column("meter", sa.String(length=100), nullable=True),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("segment_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("segment_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.String(length=60), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["backplane_invoices.id"],
            name=op.f("fk_backplane_invoice_lines_invoice_id_backplane_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_invoice_lines_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_invoice_lines")),
    )
    with op.batch_alter_table("backplane_invoice_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_invoice_lines_invoice_id"), ["invoice_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_invoice_lines_tenant_id"), ["tenant_id"], unique=False
        )

    for table in TENANT_TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TENANT_TABLES:
        disable_tenant_rls(op, table)
    with op.batch_alter_table("backplane_invoice_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_invoice_lines_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_backplane_invoice_lines_invoice_id"))

    op.drop_table("backplane_invoice_lines")
    with op.batch_alter_table("backplane_usage_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_usage_rollups_tenant_id"))

    op.drop_table("backplane_usage_rollups")
    with op.batch_alter_table("backplane_usage_distinct", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_usage_distinct_tenant_id"))

    op.drop_table("backplane_usage_distinct")
    with op.batch_alter_table("backplane_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_subscriptions_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_backplane_subscriptions_plan_id"))
        batch_op.drop_index(
            "ix_backplane_subscriptions_open",
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )

    op.drop_table("backplane_subscriptions")
    with op.batch_alter_table("backplane_quota_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_quota_notices_tenant_id"))

    op.drop_table("backplane_quota_notices")
    op.drop_table("backplane_plan_entitlements")
    op.drop_table("backplane_plan_charges")
    with op.batch_alter_table("backplane_invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_invoices_tenant_id"))

    op.drop_table("backplane_invoices")
    op.drop_table("backplane_plans")
