"""education: the xAPI learning record store (statements, related keys, attachments,
activities, documents, credentials)

Revision ID: education_0003
Revises: education_0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "education_0003"
down_revision: str | Sequence[str] | None = "education_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATEMENTS = "xapi_statements"
REFS = "xapi_statement_refs"
ATTACHMENTS = "xapi_attachments"
ACTIVITIES = "xapi_activities"
DOCUMENTS = "xapi_documents"
CREDENTIALS = "xapi_credentials"
TABLES = (STATEMENTS, REFS, ATTACHMENTS, ACTIVITIES, DOCUMENTS, CREDENTIALS)
IRI = 2048
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant(table: str) -> list[Any]:
    return [sa.Column("tenant_id", sa.Uuid(), nullable=False), tenant_foreign_key(op, table)]


def upgrade() -> None:
    op.create_table(
        STATEMENTS,
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("stored", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verb", sa.String(IRI), nullable=False),
        sa.Column("actor", sa.String(IRI), nullable=True),
        sa.Column("object_agent", sa.String(IRI), nullable=True),
        sa.Column("object_activity", sa.String(IRI), nullable=True),
        sa.Column("registration", sa.Uuid(), nullable=True),
        sa.Column("voids", sa.Uuid(), nullable=True),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.Column("has_attachments", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        *_tenant(STATEMENTS),
        sa.PrimaryKeyConstraint("seq", name=op.f(f"pk_{STATEMENTS}")),
        sa.UniqueConstraint("tenant_id", "statement_id", name="uq_xapi_statements_id"),
    )
    for name, columns in (
        ("verb", ["tenant_id", "verb", "seq"]),
        ("actor", ["tenant_id", "actor", "seq"]),
        ("object_agent", ["tenant_id", "object_agent", "seq"]),
        ("activity", ["tenant_id", "object_activity", "seq"]),
        ("registration", ["tenant_id", "registration", "seq"]),
        ("stored", ["tenant_id", "stored"]),
        ("voids", ["tenant_id", "voids"]),
    ):
        op.create_index(f"ix_xapi_statements_{name}", STATEMENTS, columns)
    op.create_table(
        REFS,
        sa.Column("seq", SEQ, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("value", sa.String(IRI), nullable=False),
        *_tenant(REFS),
        sa.ForeignKeyConstraint(
            ["seq"],
            [f"{STATEMENTS}.seq"],
            name=op.f(f"fk_{REFS}_seq_{STATEMENTS}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", "kind", "value", name=op.f(f"pk_{REFS}")),
    )
    op.create_index("ix_xapi_statement_refs_value", REFS, ["tenant_id", "kind", "value", "seq"])
    op.create_table(
        ATTACHMENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sha2", sa.String(128), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        *_tenant(ATTACHMENTS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{ATTACHMENTS}")),
        sa.UniqueConstraint("tenant_id", "sha2", name="uq_xapi_attachments_sha2"),
    )
    op.create_table(
        ACTIVITIES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("activity_id", sa.String(IRI), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        *_tenant(ACTIVITIES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{ACTIVITIES}")),
    )
    op.create_index("ix_xapi_activities_key", ACTIVITIES, ["tenant_id", "key"], unique=True)
    op.create_table(
        DOCUMENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("document_id", sa.String(IRI), nullable=False),
        sa.Column("activity_id", sa.String(IRI), nullable=False),
        sa.Column("agent", sa.String(IRI), nullable=False),
        sa.Column("registration", sa.String(36), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        *_tenant(DOCUMENTS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{DOCUMENTS}")),
    )
    op.create_index("ix_xapi_documents_key", DOCUMENTS, ["tenant_id", "key"], unique=True)
    op.create_index("ix_xapi_documents_scope", DOCUMENTS, ["tenant_id", "scope", "updated"])
    op.create_index("ix_xapi_documents_agent", DOCUMENTS, ["tenant_id", "agent"])
    op.create_table(
        CREDENTIALS,
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        *_tenant(CREDENTIALS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{CREDENTIALS}")),
    )
    for table in TABLES:
        op.create_index(op.f(f"ix_{table}_tenant_id"), table, ["tenant_id"])
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(op, table)
        op.drop_table(table)
