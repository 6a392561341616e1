"""marketplace pricing: each version's tariff, and the tariff each install accepted

Revision ID: marketplace_0004
Revises: marketplace_0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "marketplace_0004"
down_revision: str | Sequence[str] | None = "marketplace_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("marketplace_versions", "marketplace_installs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "price_model", sa.String(length=20), server_default="free", nullable=False
                )
            )
            batch_op.add_column(
                sa.Column("unit_price", sa.BigInteger(), server_default="0", nullable=False)
            )
            batch_op.add_column(
                sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False)
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("currency")
            batch_op.drop_column("unit_price")
            batch_op.drop_column("price_model")
