"""model drift: a trained version's training-data feature profile and its last drift alert

Revision ID: core_0016
Revises: core_0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0016"
down_revision: str | Sequence[str] | None = "core_0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS = "backplane_model_versions"


def upgrade() -> None:
    with op.batch_alter_table(VERSIONS, schema=None) as batch_op:
        batch_op.add_column(sa.Column("feature_profile", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("drift_alerted_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table(VERSIONS, schema=None) as batch_op:
        batch_op.drop_column("drift_alerted_at")
        batch_op.drop_column("feature_profile")
