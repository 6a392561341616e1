"""documents: bulk generation jobs and their per-row outcomes

Revision ID: documents_0002
Revises: documents_0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "documents_0002"
down_revision: str | Sequence[str] | None = "documents_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOBS = "documents_jobs"
ROWS = "documents_job_rows"
TEMPLATES = "documents_templates"
VERSIONS = "documents_template_versions"


def upgrade() -> None:
    op.create_table(
        JOBS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("chunk_rows", sa.Integer(), nullable=False),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("chunks_enqueued", sa.Integer(), nullable=False),
        sa.Column("data_file_id", sa.Uuid(), nullable=True),
        sa.Column("offsets", sa.JSON(), nullable=False),
        sa.Column("data_size", sa.BigInteger(), nullable=False),
        sa.Column("zip_file_id", sa.Uuid(), nullable=True),
        sa.Column("max_error_rate", sa.Float(), nullable=True),
        sa.Column("name_field", sa.String(64), nullable=True),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, JOBS),
        sa.ForeignKeyConstraint(
            ["template_id"],
            [f"{TEMPLATES}.id"],
            name=op.f(f"fk_{JOBS}_template_id_{TEMPLATES}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            [f"{VERSIONS}.id"],
            name=op.f(f"fk_{JOBS}_version_id_{VERSIONS}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{JOBS}")),
    )
    op.create_index(op.f(f"ix_{JOBS}_tenant_id"), JOBS, ["tenant_id"])
    op.create_index(op.f(f"ix_{JOBS}_template_id"), JOBS, ["template_id"])
    op.create_index("ix_documents_jobs_tenant_created", JOBS, ["tenant_id", "created_at"])
    op.create_table(
        ROWS,
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("file_id", sa.Uuid(), nullable=True),
        sa.Column("byte_offset", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("media_type", sa.String(127), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, ROWS),
        sa.ForeignKeyConstraint(
            ["job_id"], [f"{JOBS}.id"], name=op.f(f"fk_{ROWS}_job_id_{JOBS}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "number", name=op.f(f"pk_{ROWS}")),
    )
    op.create_index(op.f(f"ix_{ROWS}_tenant_id"), ROWS, ["tenant_id"])
    op.create_index("ix_documents_job_rows_status", ROWS, ["job_id", "status", "number"])
    op.create_index("ix_documents_job_rows_chunk", ROWS, ["job_id", "chunk"])
    for table in (JOBS, ROWS):
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in (ROWS, JOBS):
        disable_tenant_rls(op, table)
        op.drop_table(table)
