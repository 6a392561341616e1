"""billing: webhook endpoints, events and deliveries

Revision ID: core_0008
Revises: core_0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "core_0008"
down_revision: str | Sequence[str] | None = "core_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENDPOINTS = "backplane_webhook_endpoints"
EVENTS = "backplane_webhook_events"
DELIVERIES = "backplane_webhook_deliveries"
TABLES = (ENDPOINTS, EVENTS, DELIVERIES)


def upgrade() -> None:
    op.create_table(
        ENDPOINTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("secret_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, ENDPOINTS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{ENDPOINTS}")),
    )
    with op.batch_alter_table(ENDPOINTS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{ENDPOINTS}_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        EVENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, EVENTS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{EVENTS}")),
    )
    with op.batch_alter_table(EVENTS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{EVENTS}_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        DELIVERIES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, DELIVERIES),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            [f"{ENDPOINTS}.id"],
            name=op.f(f"fk_{DELIVERIES}_endpoint_id_{ENDPOINTS}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            [f"{EVENTS}.id"],
            name=op.f(f"fk_{DELIVERIES}_event_id_{EVENTS}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{DELIVERIES}")),
    )
    with op.batch_alter_table(DELIVERIES, schema=None) as batch_op:
        batch_op.create_index(
            "ix_backplane_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f(f"ix_{DELIVERIES}_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(batch_op.f(f"ix_{DELIVERIES}_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f(f"ix_{DELIVERIES}_tenant_id"), ["tenant_id"], unique=False)

    for table in TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(op, table)
    with op.batch_alter_table(DELIVERIES, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{DELIVERIES}_tenant_id"))
        batch_op.drop_index(batch_op.f(f"ix_{DELIVERIES}_event_id"))
        batch_op.drop_index(batch_op.f(f"ix_{DELIVERIES}_endpoint_id"))
        batch_op.drop_index("ix_backplane_webhook_deliveries_due")
    op.drop_table(DELIVERIES)
    with op.batch_alter_table(EVENTS, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{EVENTS}_tenant_id"))
    op.drop_table(EVENTS)
    with op.batch_alter_table(ENDPOINTS, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{ENDPOINTS}_tenant_id"))
    op.drop_table(ENDPOINTS)
