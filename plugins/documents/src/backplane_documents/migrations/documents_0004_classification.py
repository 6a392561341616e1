"""documents: an extraction's label (set by a user, for training), its classifier and result

Revision ID: documents_0004
Revises: documents_0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "documents_0004"
down_revision: str | Sequence[str] | None = "documents_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXTRACTIONS = "documents_extractions"


def upgrade() -> None:
    with op.batch_alter_table(EXTRACTIONS) as batch:
        batch.add_column(sa.Column("label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("classifier", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("classification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(EXTRACTIONS) as batch:
        batch.drop_column("classification")
        batch.drop_column("classifier")
        batch.drop_column("label")
