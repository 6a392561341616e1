"""education: certificates of completion (rendered by the documents plugin when installed),
and the course's choice of certificate template

Revision ID: education_0004
Revises: education_0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "education_0004"
down_revision: str | Sequence[str] | None = "education_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "education_certificates"


def upgrade() -> None:
    with op.batch_alter_table("education_courses") as batch:
        batch.add_column(sa.Column("certificate_template", sa.String(200), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("enrolment_id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("course_title", sa.String(200), nullable=False),
        sa.Column("template", sa.String(200), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, TABLE),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["education_courses.id"],
            name=op.f(f"fk_{TABLE}_course_id_education_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrolment_id"],
            ["education_enrolments.id"],
            name=op.f(f"fk_{TABLE}_enrolment_id_education_enrolments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint("enrolment_id", name="uq_education_certificates_enrolment"),
    )
    for column in ("tenant_id", "course_id", "user_id"):
        op.create_index(op.f(f"ix_{TABLE}_{column}"), TABLE, [column])
    enable_tenant_rls(op, TABLE)


def downgrade() -> None:
    disable_tenant_rls(op, TABLE)
    op.drop_table(TABLE)
    with op.batch_alter_table("education_courses") as batch:
        batch.drop_column("certificate_template")
