"""marketplace money: consumers' charges per version and period, publishers' statements,
the default payout ledger

Revision ID: marketplace_0005
Revises: marketplace_0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "marketplace_0005"
down_revision: str | Sequence[str] | None = "marketplace_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHARGES = "marketplace_charges"
STATEMENTS = "marketplace_statements"
LEDGER = "marketplace_payout_ledger"


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        CHARGES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publisher_id", sa.Uuid(), nullable=False),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("price_model", sa.String(length=20), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, CHARGES),
        _fk(CHARGES, "publisher_id", "marketplace_publishers"),
        _fk(CHARGES, "listing_id", "marketplace_listings"),
        _fk(CHARGES, "version_id", "marketplace_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{CHARGES}")),
        sa.UniqueConstraint(
            "tenant_id",
            "period_start",
            "version_id",
            name=op.f(f"uq_{CHARGES}_tenant_id_period_start_version_id"),
        ),
    )
    op.create_index(op.f(f"ix_{CHARGES}_tenant_id"), CHARGES, ["tenant_id"])
    op.create_index(op.f(f"ix_{CHARGES}_period_start"), CHARGES, ["period_start"])
    enable_tenant_rls(op, CHARGES)
    op.create_table(
        STATEMENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("publisher_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("platform_share_percent", sa.Integer(), nullable=False),
        sa.Column("platform_share", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("listings", sa.JSON(), nullable=False),
        sa.Column("payout_provider", sa.String(length=50), nullable=False),
        sa.Column("payout_reference", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _fk(STATEMENTS, "publisher_id", "marketplace_publishers"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{STATEMENTS}")),
        sa.UniqueConstraint(
            "publisher_id",
            "period_start",
            "currency",
            name=op.f(f"uq_{STATEMENTS}_publisher_id_period_start_currency"),
        ),
    )
    op.create_index(op.f(f"ix_{STATEMENTS}_publisher_id"), STATEMENTS, ["publisher_id"])
    op.create_table(
        LEDGER,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("publisher_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _fk(LEDGER, "statement_id", "marketplace_statements"),
        _fk(LEDGER, "publisher_id", "marketplace_publishers"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{LEDGER}")),
        sa.UniqueConstraint("statement_id", name=op.f(f"uq_{LEDGER}_statement_id")),
    )
    op.create_index(op.f(f"ix_{LEDGER}_publisher_id"), LEDGER, ["publisher_id"])


def downgrade() -> None:
    op.drop_index(op.f(f"ix_{LEDGER}_publisher_id"), table_name=LEDGER)
    op.drop_table(LEDGER)
    op.drop_index(op.f(f"ix_{STATEMENTS}_publisher_id"), table_name=STATEMENTS)
    op.drop_table(STATEMENTS)
    disable_tenant_rls(op, CHARGES)
    op.drop_index(op.f(f"ix_{CHARGES}_period_start"), table_name=CHARGES)
    op.drop_index(op.f(f"ix_{CHARGES}_tenant_id"), table_name=CHARGES)
    op.drop_table(CHARGES)
