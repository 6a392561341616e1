"""documents: extractions, their pages, bulk extraction jobs and their chunk ledger

Revision ID: documents_0003
Revises: documents_0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "documents_0003"
down_revision: str | Sequence[str] | None = "documents_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS = "documents_extraction_jobs"
EXTRACTIONS = "documents_extractions"
PAGES = "documents_extraction_pages"
CHUNKS = "documents_extraction_chunks"


def _cascade(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        JOBS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total_pages", sa.Integer(), nullable=False),
        sa.Column("done_pages", sa.Integer(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("failed_documents", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.JSON(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, JOBS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{JOBS}")),
    )
    op.create_index(op.f(f"ix_{JOBS}_tenant_id"), JOBS, ["tenant_id"])
    op.create_index("ix_documents_extraction_jobs_created", JOBS, ["created_at"])
    op.create_table(
        EXTRACTIONS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(127), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("done_pages", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("template_id", sa.Uuid(), nullable=True),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("field_errors", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, EXTRACTIONS),
        _cascade(EXTRACTIONS, "job_id", JOBS),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{EXTRACTIONS}")),
    )
    op.create_index(op.f(f"ix_{EXTRACTIONS}_tenant_id"), EXTRACTIONS, ["tenant_id"])
    op.create_index(op.f(f"ix_{EXTRACTIONS}_job_id"), EXTRACTIONS, ["job_id"])
    op.create_index("ix_documents_extractions_created", EXTRACTIONS, ["created_at"])
    op.create_table(
        PAGES,
        sa.Column("extraction_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, PAGES),
        _cascade(PAGES, "extraction_id", EXTRACTIONS),
        sa.PrimaryKeyConstraint("extraction_id", "number", name=op.f(f"pk_{PAGES}")),
    )
    op.create_index(op.f(f"ix_{PAGES}_tenant_id"), PAGES, ["tenant_id"])
    op.create_table(
        CHUNKS,
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, CHUNKS),
        _cascade(CHUNKS, "job_id", JOBS),
        sa.PrimaryKeyConstraint("job_id", "number", name=op.f(f"pk_{CHUNKS}")),
    )
    op.create_index(op.f(f"ix_{CHUNKS}_tenant_id"), CHUNKS, ["tenant_id"])
    for table in (JOBS, EXTRACTIONS, PAGES, CHUNKS):
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in (CHUNKS, PAGES, EXTRACTIONS, JOBS):
        disable_tenant_rls(op, table)
        op.drop_table(table)
