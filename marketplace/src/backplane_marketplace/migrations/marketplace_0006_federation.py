"""marketplace federation: listings' opt-in, subscriptions to other deployments' catalogs,
their listings, and tenants' installs of them

Revision ID: marketplace_0006
Revises: marketplace_0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import create_tenant_table, drop_tenant_table

revision: str = "marketplace_0006"
down_revision: str | Sequence[str] | None = "marketplace_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUBSCRIPTIONS = "marketplace_subscriptions"
REMOTE = "marketplace_federated_listings"
INSTALLS = "marketplace_federated_installs"


def upgrade() -> None:
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("federated", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        SUBSCRIPTIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("catalog_key", sa.String(length=64), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{SUBSCRIPTIONS}")),
        sa.UniqueConstraint("url", name=op.f(f"uq_{SUBSCRIPTIONS}_url")),
    )
    op.create_table(
        REMOTE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("remote_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("license", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=8000), nullable=False),
        sa.Column("intended_use", sa.String(length=4000), nullable=False),
        sa.Column("limitations", sa.String(length=4000), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("publisher", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            [f"{SUBSCRIPTIONS}.id"],
            name=op.f(f"fk_{REMOTE}_subscription_id_{SUBSCRIPTIONS}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{REMOTE}")),
        sa.UniqueConstraint(
            "subscription_id", "remote_id", name=op.f(f"uq_{REMOTE}_subscription_id_remote_id")
        ),
    )
    op.create_index(op.f(f"ix_{REMOTE}_subscription_id"), REMOTE, ["subscription_id"])
    create_tenant_table(
        op,
        INSTALLS,
        sa.Column("federated_listing_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_url", sa.String(length=500), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("publisher_key", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("installed_by", sa.Uuid(), nullable=True),
        sa.Column(
            "installed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.UniqueConstraint(
            "tenant_id", "federated_listing_id", name="uq_marketplace_federated_installs_listing"
        ),
        sa.UniqueConstraint(
            "tenant_id", "model_name", name="uq_marketplace_federated_installs_model_name"
        ),
    )


def downgrade() -> None:
    drop_tenant_table(op, INSTALLS)
    op.drop_index(op.f(f"ix_{REMOTE}_subscription_id"), table_name=REMOTE)
    op.drop_table(REMOTE)
    op.drop_table(SUBSCRIPTIONS)
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.drop_column("federated")
