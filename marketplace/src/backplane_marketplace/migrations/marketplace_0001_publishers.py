"""marketplace publishers and their Ed25519 signing keys

Revision ID: marketplace_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "marketplace_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("marketplace",)
depends_on: str | Sequence[str] | None = "core_0002"

PUBLISHERS = "marketplace_publishers"
KEYS = "marketplace_signing_keys"


def upgrade() -> None:
    op.create_table(
        PUBLISHERS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher_tenant_id", sa.Uuid(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("applied_by", sa.Uuid(), nullable=True),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=2000), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected')", name=op.f(f"ck_{PUBLISHERS}_state")
        ),
        sa.ForeignKeyConstraint(
            ["publisher_tenant_id"],
            ["backplane_tenants.id"],
            name=op.f(f"fk_{PUBLISHERS}_publisher_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["applied_by"],
            ["backplane_users.id"],
            name=op.f(f"fk_{PUBLISHERS}_applied_by_backplane_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["backplane_users.id"],
            name=op.f(f"fk_{PUBLISHERS}_decided_by_backplane_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{PUBLISHERS}")),
        sa.UniqueConstraint(
            "publisher_tenant_id", name=op.f(f"uq_{PUBLISHERS}_publisher_tenant_id")
        ),
    )
    op.create_table(
        KEYS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher_id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            [f"{PUBLISHERS}.id"],
            name=op.f(f"fk_{KEYS}_publisher_id_{PUBLISHERS}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["backplane_users.id"],
            name=op.f(f"fk_{KEYS}_created_by_backplane_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{KEYS}")),
        sa.UniqueConstraint("public_key", name=op.f(f"uq_{KEYS}_public_key")),
    )
    with op.batch_alter_table(KEYS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{KEYS}_publisher_id"), ["publisher_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(KEYS, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{KEYS}_publisher_id"))
    op.drop_table(KEYS)
    op.drop_table(PUBLISHERS)
