"""identity: session epochs of users and refresh tokens (a password change ends sessions)

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0009"
down_revision: str | Sequence[str] | None = "core_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("backplane_users", "backplane_refresh_tokens")
"""Plain ``ALTER TABLE`` on every database, no batch copy: SQLite (3.35+) adds and drops such a
column in place, whereas a batch copy would drop ``backplane_users``, and with foreign keys on
that cascades into every membership and session."""


def upgrade() -> None:
    # Existing users and sessions start in epoch 0: the upgrade logs nobody out.
    for table in TABLES:
        op.add_column(
            table, sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_column(table, "session_epoch")
