"""marketplace listings (model cards) and their signed, checked versions

Revision ID: marketplace_0002
Revises: marketplace_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "marketplace_0002"
down_revision: str | Sequence[str] | None = "marketplace_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTINGS = "marketplace_listings"
VERSIONS = "marketplace_versions"


def _user(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["backplane_users.id"],
        name=op.f(f"fk_{table}_{column}_backplane_users"),
        ondelete="SET NULL",
    )


def upgrade() -> None:
    op.create_table(
        LISTINGS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=8000), nullable=False),
        sa.Column("intended_use", sa.String(length=4000), nullable=False),
        sa.Column("limitations", sa.String(length=4000), nullable=False),
        sa.Column("license", sa.String(length=200), nullable=False),
        sa.Column("downloadable", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["marketplace_publishers.id"],
            name=op.f(f"fk_{LISTINGS}_publisher_id_marketplace_publishers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{LISTINGS}")),
        sa.UniqueConstraint("slug", name=op.f(f"uq_{LISTINGS}_slug")),
    )
    with op.batch_alter_table(LISTINGS, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f(f"ix_{LISTINGS}_publisher_id"), ["publisher_id"], unique=False
        )
    op.create_table(
        VERSIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("signing_key_id", sa.Uuid(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("claimed_metrics", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("changelog", sa.String(length=4000), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("review_reason", sa.String(length=2000), nullable=False),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column(
            "submitted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('in_review', 'changes_requested', 'approved', 'rejected')",
            name=op.f(f"ck_{VERSIONS}_state"),
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            [f"{LISTINGS}.id"],
            name=op.f(f"fk_{VERSIONS}_listing_id_{LISTINGS}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signing_key_id"],
            ["marketplace_signing_keys.id"],
            name=op.f(f"fk_{VERSIONS}_signing_key_id_marketplace_signing_keys"),
            ondelete="RESTRICT",
        ),
        _user("submitted_by", VERSIONS),
        _user("decided_by", VERSIONS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{VERSIONS}")),
        sa.UniqueConstraint("listing_id", "version", name=op.f(f"uq_{VERSIONS}_listing_id")),
    )
    with op.batch_alter_table(VERSIONS, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{VERSIONS}_listing_id"), ["listing_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(VERSIONS, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{VERSIONS}_listing_id"))
    op.drop_table(VERSIONS)
    with op.batch_alter_table(LISTINGS, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{LISTINGS}_publisher_id"))
    op.drop_table(LISTINGS)
