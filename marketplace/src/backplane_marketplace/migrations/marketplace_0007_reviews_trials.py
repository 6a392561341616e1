"""marketplace ratings and reviews, version deprecation, trial allowances, following installs
and their notices

Revision ID: marketplace_0007
Revises: marketplace_0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import create_tenant_table, drop_tenant_table

revision: str = "marketplace_0007"
down_revision: str | Sequence[str] | None = "marketplace_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVIEWS = "marketplace_reviews"
NOTICES = "marketplace_notices"
INSTALLS = "marketplace_installs"


def upgrade() -> None:
    op.create_table(
        REVIEWS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("rater_tenant_id", sa.Uuid(), nullable=False),
        sa.Column("written_by", sa.Uuid(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.String(length=4000), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("reply", sa.String(length=4000), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f(f"ck_{REVIEWS}_rating")),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["marketplace_listings.id"],
            name=op.f(f"fk_{REVIEWS}_listing_id_marketplace_listings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_tenant_id"],
            ["backplane_tenants.id"],
            name=op.f(f"fk_{REVIEWS}_rater_tenant_id_backplane_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["written_by"],
            ["backplane_users.id"],
            name=op.f(f"fk_{REVIEWS}_written_by_backplane_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{REVIEWS}")),
        sa.UniqueConstraint(
            "listing_id", "rater_tenant_id", name=op.f(f"uq_{REVIEWS}_listing_id_rater_tenant_id")
        ),
    )
    op.create_index(op.f(f"ix_{REVIEWS}_listing_id"), REVIEWS, ["listing_id"])
    op.create_index(op.f(f"ix_{REVIEWS}_rater_tenant_id"), REVIEWS, ["rater_tenant_id"])
    with op.batch_alter_table("marketplace_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deprecated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("deprecation_note", sa.String(length=2000), server_default="", nullable=False)
        )
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trial_units", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("marketplace_charges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trial_units", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table(INSTALLS, schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=10), server_default="pinned", nullable=False)
        )
        batch_op.add_column(sa.Column("pending_version_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("upgrade_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            op.f(f"fk_{INSTALLS}_pending_version_id_marketplace_versions"),
            "marketplace_versions",
            ["pending_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    create_tenant_table(
        op,
        NOTICES,
        sa.Column("install_id", sa.Uuid(), nullable=True),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("to_version_id", sa.Uuid(), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["install_id"],
            [f"{INSTALLS}.id"],
            name=op.f(f"fk_{NOTICES}_install_id_{INSTALLS}"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["marketplace_listings.id"],
            name=op.f(f"fk_{NOTICES}_listing_id_marketplace_listings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["marketplace_versions.id"],
            name=op.f(f"fk_{NOTICES}_to_version_id_marketplace_versions"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "install_id",
            "kind",
            "to_version_id",
            name=op.f(f"uq_{NOTICES}_tenant_id_install_id_kind_to_version_id"),
        ),
    )


def downgrade() -> None:
    drop_tenant_table(op, NOTICES)
    with op.batch_alter_table(INSTALLS, schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f(f"fk_{INSTALLS}_pending_version_id_marketplace_versions"), type_="foreignkey"
        )
        batch_op.drop_column("upgrade_at")
        batch_op.drop_column("pending_version_id")
        batch_op.drop_column("mode")
    with op.batch_alter_table("marketplace_charges", schema=None) as batch_op:
        batch_op.drop_column("trial_units")
    with op.batch_alter_table("marketplace_listings", schema=None) as batch_op:
        batch_op.drop_column("trial_units")
    with op.batch_alter_table("marketplace_versions", schema=None) as batch_op:
        batch_op.drop_column("deprecation_note")
        batch_op.drop_column("deprecated_at")
    op.drop_index(op.f(f"ix_{REVIEWS}_rater_tenant_id"), table_name=REVIEWS)
    op.drop_index(op.f(f"ix_{REVIEWS}_listing_id"), table_name=REVIEWS)
    op.drop_table(REVIEWS)
