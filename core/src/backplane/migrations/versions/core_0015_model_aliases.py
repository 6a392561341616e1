"""model aliases: a tenant model's named pointers at versions, and their change history

Revision ID: core_0015
Revises: core_0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "core_0015"
down_revision: str | Sequence[str] | None = "core_0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALIASES = "backplane_model_aliases"
CHANGES = "backplane_model_alias_changes"
TABLES = (ALIASES, CHANGES)


def upgrade() -> None:
    op.create_table(
        ALIASES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("split_version", sa.String(length=50), nullable=True),
        sa.Column("split_percent", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=250), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, ALIASES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{ALIASES}")),
        sa.UniqueConstraint("tenant_id", "name", "alias", name=op.f(f"uq_{ALIASES}_tenant_id")),
    )
    with op.batch_alter_table(ALIASES, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{ALIASES}_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        CHANGES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=True),
        sa.Column("split_version", sa.String(length=50), nullable=True),
        sa.Column("split_percent", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.String(length=50), nullable=True),
        sa.Column("previous_split_version", sa.String(length=50), nullable=True),
        sa.Column("previous_split_percent", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.String(length=250), nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, CHANGES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{CHANGES}")),
    )
    with op.batch_alter_table(CHANGES, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{CHANGES}_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_backplane_model_alias_changes_alias",
            ["tenant_id", "name", "alias", "seq"],
            unique=False,
        )
    for table in TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(op, table)
    with op.batch_alter_table(CHANGES, schema=None) as batch_op:
        batch_op.drop_index("ix_backplane_model_alias_changes_alias")
        batch_op.drop_index(batch_op.f(f"ix_{CHANGES}_tenant_id"))
    op.drop_table(CHANGES)
    with op.batch_alter_table(ALIASES, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{ALIASES}_tenant_id"))
    op.drop_table(ALIASES)
