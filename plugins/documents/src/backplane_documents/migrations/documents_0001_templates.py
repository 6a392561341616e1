"""documents: templates, their versions, generated documents

Revision ID: documents_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "documents_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("documents",)
depends_on: str | Sequence[str] | None = "core_0002"
"""The kernel's tenants table, which every row references."""

TEMPLATES = "documents_templates"
VERSIONS = "documents_template_versions"
DOCUMENTS = "documents_documents"


def _stamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        TEMPLATES,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        *_stamps(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, TEMPLATES),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TEMPLATES}")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_documents_templates_tenant_name"),
    )
    op.create_index(op.f(f"ix_{TEMPLATES}_tenant_id"), TEMPLATES, ["tenant_id"])
    op.create_table(
        VERSIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("field_schema", sa.JSON(), nullable=False),
        *_stamps(),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, VERSIONS),
        sa.ForeignKeyConstraint(
            ["template_id"],
            [f"{TEMPLATES}.id"],
            name=op.f(f"fk_{VERSIONS}_template_id_{TEMPLATES}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{VERSIONS}")),
        sa.UniqueConstraint("template_id", "number", name="uq_documents_template_versions_number"),
    )
    op.create_index(op.f(f"ix_{VERSIONS}_tenant_id"), VERSIONS, ["tenant_id"])
    op.create_index(op.f(f"ix_{VERSIONS}_template_id"), VERSIONS, ["template_id"])
    op.create_table(
        DOCUMENTS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("subject_email", sa.String(320), nullable=True),
        *_stamps(),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, DOCUMENTS),
        sa.ForeignKeyConstraint(
            ["template_id"],
            [f"{TEMPLATES}.id"],
            name=op.f(f"fk_{DOCUMENTS}_template_id_{TEMPLATES}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            [f"{VERSIONS}.id"],
            name=op.f(f"fk_{DOCUMENTS}_version_id_{VERSIONS}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{DOCUMENTS}")),
    )
    op.create_index(op.f(f"ix_{DOCUMENTS}_tenant_id"), DOCUMENTS, ["tenant_id"])
    op.create_index(op.f(f"ix_{DOCUMENTS}_template_id"), DOCUMENTS, ["template_id"])
    op.create_index(op.f(f"ix_{DOCUMENTS}_version_id"), DOCUMENTS, ["version_id"])
    op.create_index("ix_documents_documents_tenant_created", DOCUMENTS, ["tenant_id", "created_at"])
    op.create_index(op.f(f"ix_{DOCUMENTS}_subject_email"), DOCUMENTS, ["subject_email"])
    for table in (TEMPLATES, VERSIONS, DOCUMENTS):
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in (DOCUMENTS, VERSIONS, TEMPLATES):
        disable_tenant_rls(op, table)
        op.drop_table(table)
