"""education: the statements' ``voids`` index holds voiding statements only

Every statement stored looks up whether an earlier voiding statement targets it. On the full
``(tenant_id, voids)`` index PostgreSQL could plan that lookup (for a batch, one hashed pass)
as a scan of all the tenant's statements whenever its statistics were behind the table (a
young or fast-growing store): a cost growing with the store, paid by every insert. The partial
index holds only voiding statements, so the lookup reads those alone whatever the plan, and the
other statements (nearly all of them) no longer add an entry to it.

Revision ID: education_0006
Revises: education_0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "education_0006"
down_revision: str | Sequence[str] | None = "education_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATEMENTS = "xapi_statements"
INDEX = "ix_xapi_statements_voids"
VOIDING = sa.text("voids IS NOT NULL")


def upgrade() -> None:
    op.drop_index(INDEX, STATEMENTS)
    op.create_index(
        INDEX,
        STATEMENTS,
        ["tenant_id", "voids"],
        postgresql_where=VOIDING,
        sqlite_where=VOIDING,
    )


def downgrade() -> None:
    op.drop_index(INDEX, STATEMENTS)
    op.create_index(INDEX, STATEMENTS, ["tenant_id", "voids"])
