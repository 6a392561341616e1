"""education: statements page in stored order: ``(tenant_id, <filter>, stored, seq)`` indexes,
and the related keys carry their statement's ``stored``

Revision ID: education_0005
Revises: education_0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "education_0005"
down_revision: str | Sequence[str] | None = "education_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATEMENTS = "xapi_statements"
REFS = "xapi_statement_refs"
FILTERS = (
    ("verb", "verb"),
    ("actor", "actor"),
    ("object_agent", "object_agent"),
    ("activity", "object_activity"),
    ("registration", "registration"),
)


def _statement_indexes(tail: list[str]) -> None:
    for name, column in FILTERS:
        op.drop_index(f"ix_{STATEMENTS}_{name}", STATEMENTS)
        op.create_index(f"ix_{STATEMENTS}_{name}", STATEMENTS, ["tenant_id", column, *tail])


def upgrade() -> None:
    _statement_indexes(["stored", "seq"])
    op.drop_index(f"ix_{STATEMENTS}_stored", STATEMENTS)
    op.create_index(f"ix_{STATEMENTS}_stored", STATEMENTS, ["tenant_id", "stored", "seq"])
    op.add_column(REFS, sa.Column("stored", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE xapi_statement_refs SET stored = (SELECT s.stored FROM xapi_statements AS s "
        "WHERE s.seq = xapi_statement_refs.seq)"
    )
    with op.batch_alter_table(REFS) as batch:
        batch.alter_column("stored", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.drop_index(f"ix_{REFS}_value", REFS)
    op.create_index(f"ix_{REFS}_value", REFS, ["tenant_id", "kind", "value", "stored", "seq"])


def downgrade() -> None:
    op.drop_index(f"ix_{REFS}_value", REFS)
    op.create_index(f"ix_{REFS}_value", REFS, ["tenant_id", "kind", "value", "seq"])
    with op.batch_alter_table(REFS) as batch:
        batch.drop_column("stored")
    op.drop_index(f"ix_{STATEMENTS}_stored", STATEMENTS)
    op.create_index(f"ix_{STATEMENTS}_stored", STATEMENTS, ["tenant_id", "stored"])
    _statement_indexes(["seq"])
