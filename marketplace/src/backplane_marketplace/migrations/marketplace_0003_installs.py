"""marketplace installs: a consumer tenant's listing, pinned to a version, under its own name

Revision ID: marketplace_0003
Revises: marketplace_0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketplace_0003"
down_revision: str | Sequence[str] | None = "marketplace_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTALLS = "marketplace_installs"


def upgrade() -> None:
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("installs", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        INSTALLS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("installed_by", sa.Uuid(), nullable=True),
        sa.Column(
            "installed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, INSTALLS),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["marketplace_listings.id"],
            name=op.f(f"fk_{INSTALLS}_listing_id_marketplace_listings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["marketplace_versions.id"],
            name=op.f(f"fk_{INSTALLS}_version_id_marketplace_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{INSTALLS}")),
        sa.UniqueConstraint("tenant_id", "listing_id", name="uq_marketplace_installs_listing"),
        sa.UniqueConstraint("tenant_id", "model_name", name="uq_marketplace_installs_model_name"),
    )
    op.create_index(op.f(f"ix_{INSTALLS}_tenant_id"), INSTALLS, ["tenant_id"])
    enable_tenant_rls(op, INSTALLS)


def downgrade() -> None:
    disable_tenant_rls(op, INSTALLS)
    op.drop_index(op.f(f"ix_{INSTALLS}_tenant_id"), table_name=INSTALLS)
    op.drop_table(INSTALLS)
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.drop_column("installs")
