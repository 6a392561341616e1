"""files: tenant files' metadata and each tenant's stored bytes

Revision ID: core_0011
Revises: core_0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane.db.rls import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "core_0011"
down_revision: str | Sequence[str] | None = "core_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILES = "backplane_files"
USAGE = "backplane_file_usage"
TABLES = (FILES, USAGE)


def upgrade() -> None:
    op.create_table(
        FILES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, FILES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{FILES}")),
        sa.UniqueConstraint("storage_key", name=op.f(f"uq_{FILES}_storage_key")),
    )
    with op.batch_alter_table(FILES, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{FILES}_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_backplane_files_tenant_created", ["tenant_id", "created_at"], unique=False
        )
    op.create_table(
        USAGE,
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, USAGE),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f(f"pk_{USAGE}")),
    )
    with op.batch_alter_table(USAGE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{USAGE}_tenant_id"), ["tenant_id"], unique=False)
    for table in TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in TABLES:
        disable_tenant_rls(op, table)
    with op.batch_alter_table(USAGE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{USAGE}_tenant_id"))
    op.drop_table(USAGE)
    with op.batch_alter_table(FILES, schema=None) as batch_op:
        batch_op.drop_index("ix_backplane_files_tenant_created")
        batch_op.drop_index(batch_op.f(f"ix_{FILES}_tenant_id"))
    op.drop_table(FILES)
