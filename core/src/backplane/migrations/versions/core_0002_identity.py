"""identity: tenants, users, memberships, tenant plugins

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "core_0002"
down_revision: str | Sequence[str] | None = "core_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backplane_tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_backplane_tenants_slug")),
    )
    op.create_table(
        "backplane_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_users")),
        sa.UniqueConstraint("email", name=op.f("uq_backplane_users_email")),
    )
    op.create_table(
        "backplane_memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member', 'viewer')",
            name=op.f("ck_backplane_memberships_role"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_memberships_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["backplane_users.id"],
            name=op.f("fk_backplane_memberships_user_id_backplane_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_memberships")),
        sa.UniqueConstraint(
            "tenant_id", "user_id", name=op.f("uq_backplane_memberships_tenant_id")
        ),
    )
    with op.batch_alter_table("backplane_memberships", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_memberships_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_memberships_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "backplane_tenant_plugins",
        sa.Column("plugin", sa.String(length=63), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_tenant_plugins_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "plugin", name=op.f("pk_backplane_tenant_plugins")),
    )
    with op.batch_alter_table("backplane_tenant_plugins", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_tenant_plugins_tenant_id"), ["tenant_id"], unique=False
        )

    enable_tenant_rls(op, "backplane_memberships")
    enable_tenant_rls(op, "backplane_tenant_plugins")


def downgrade() -> None:
    disable_tenant_rls(op, "backplane_tenant_plugins")
    disable_tenant_rls(op, "backplane_memberships")
    with op.batch_alter_table("backplane_tenant_plugins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_tenant_plugins_tenant_id"))

    op.drop_table("backplane_tenant_plugins")
    with op.batch_alter_table("backplane_memberships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_memberships_user_id"))
        batch_op.drop_index(batch_op.f("ix_backplane_memberships_tenant_id"))

    op.drop_table("backplane_memberships")
    op.drop_table("backplane_users")
    op.drop_table("backplane_tenants")
