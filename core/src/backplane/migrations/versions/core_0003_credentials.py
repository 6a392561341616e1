"""identity: refresh tokens, api keys, revoked access tokens

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "core_0003"
down_revision: str | Sequence[str] | None = "core_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backplane_revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_backplane_revoked_access_tokens")),
    )
    with op.batch_alter_table("backplane_revoked_access_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_revoked_access_tokens_expires_at"),
            ["expires_at"],
            unique=False,
        )

    op.create_table(
        "backplane_api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'member', 'viewer')",
            name=op.f("ck_backplane_api_keys_role"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["backplane_users.id"],
            name=op.f("fk_backplane_api_keys_created_by_backplane_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["backplane_tenants.id"],
            name=op.f("fk_backplane_api_keys_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_api_keys")),
    )
    with op.batch_alter_table("backplane_api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_api_keys_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "backplane_refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("active_tenant_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["backplane_users.id"],
            name=op.f("fk_backplane_refresh_tokens_user_id_backplane_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backplane_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_backplane_refresh_tokens_token_hash")),
    )
    with op.batch_alter_table("backplane_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backplane_refresh_tokens_family_id"), ["family_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backplane_refresh_tokens_user_id"), ["user_id"], unique=False
        )

    enable_tenant_rls(op, "backplane_api_keys")


def downgrade() -> None:
    disable_tenant_rls(op, "backplane_api_keys")
    with op.batch_alter_table("backplane_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_refresh_tokens_user_id"))
        batch_op.drop_index(batch_op.f("ix_backplane_refresh_tokens_family_id"))

    op.drop_table("backplane_refresh_tokens")
    with op.batch_alter_table("backplane_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_api_keys_tenant_id"))

    op.drop_table("backplane_api_keys")
    with op.batch_alter_table("backplane_revoked_access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backplane_revoked_access_tokens_expires_at"))

    op.drop_table("backplane_revoked_access_tokens")
