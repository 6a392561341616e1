"""education: courses, versions, modules, lessons, instructors, cohorts, enrolments, progress

Revision ID: education_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from backplane import disable_tenant_rls, enable_tenant_rls, tenant_foreign_key

revision: str = "education_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("education",)
depends_on: str | Sequence[str] | None = "core_0002"
"""The kernel's tenants table, which every row references."""

COURSES = "education_courses"
VERSIONS = "education_course_versions"
MODULES = "education_modules"
LESSONS = "education_lessons"
INSTRUCTORS = "education_instructors"
COHORTS = "education_cohorts"
ENROLMENTS = "education_enrolments"
PROGRESS = "education_lesson_progress"
TABLES = (COURSES, VERSIONS, MODULES, LESSONS, INSTRUCTORS, COHORTS, ENROLMENTS, PROGRESS)


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str, ondelete: str | None = "CASCADE") -> Any:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _owned(table: str, *columns: Any) -> None:
    """A tenant-owned table: ``id`` primary key, the columns, ``tenant_id`` and its FK."""
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        *columns,
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        tenant_foreign_key(op, table),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.create_index(op.f(f"ix_{table}_tenant_id"), table, ["tenant_id"])


def _index(table: str, *columns: str) -> None:
    for column in columns:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def upgrade() -> None:
    _owned(
        COURSES,
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.String(4000), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("difficulty", sa.String(16), nullable=False),
        sa.Column("enrolment", sa.String(16), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.Column("seats_taken", sa.Integer(), nullable=False),
        sa.Column("prerequisite_ids", sa.JSON(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    _owned(
        VERSIONS,
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("published_at", nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _fk(VERSIONS, "course_id", COURSES),
        sa.UniqueConstraint("course_id", "number", name="uq_education_course_versions_number"),
    )
    _index(VERSIONS, "course_id")
    _owned(
        MODULES,
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        _fk(MODULES, "course_id", COURSES),
        _fk(MODULES, "version_id", VERSIONS),
    )
    _index(MODULES, "course_id", "version_id")
    _owned(
        LESSONS,
        sa.Column("key", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("module_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=True),
        sa.Column("captions_file_id", sa.Uuid(), nullable=True),
        sa.Column("chapters", sa.JSON(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("quiz_id", sa.Uuid(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("prerequisite_keys", sa.JSON(), nullable=False),
        _fk(LESSONS, "course_id", COURSES),
        _fk(LESSONS, "version_id", VERSIONS),
        _fk(LESSONS, "module_id", MODULES),
    )
    _index(LESSONS, "course_id", "version_id", "module_id")
    _owned(
        INSTRUCTORS,
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _ts("added_at"),
        _fk(INSTRUCTORS, "course_id", COURSES),
        sa.UniqueConstraint("course_id", "user_id", name="uq_education_instructors_course_user"),
    )
    _index(INSTRUCTORS, "course_id", "user_id")
    _owned(
        COHORTS,
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("starts_at"),
        _ts("ends_at"),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.Column("seats_taken", sa.Integer(), nullable=False),
        _ts("created_at"),
        _fk(COHORTS, "course_id", COURSES),
    )
    _index(COHORTS, "course_id")
    _owned(
        ENROLMENTS,
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("cohort_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("enrolled_by", sa.Uuid(), nullable=True),
        _ts("enrolled_at"),
        _ts("completed_at", nullable=True),
        _ts("unenrolled_at", nullable=True),
        _fk(ENROLMENTS, "course_id", COURSES),
        _fk(ENROLMENTS, "version_id", VERSIONS, ondelete=None),
        _fk(ENROLMENTS, "cohort_id", COHORTS, ondelete="SET NULL"),
        sa.UniqueConstraint("course_id", "user_id", name="uq_education_enrolments_course_user"),
    )
    _index(ENROLMENTS, "course_id", "version_id", "user_id", "cohort_id")
    _owned(
        PROGRESS,
        sa.Column("enrolment_id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Uuid(), nullable=False),
        sa.Column("lesson_id", sa.Uuid(), nullable=False),
        sa.Column("lesson_key", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _ts("started_at"),
        _ts("completed_at", nullable=True),
        sa.Column("time_spent_s", sa.Float(), nullable=False),
        sa.Column("position_s", sa.Float(), nullable=False),
        sa.Column("watched", sa.JSON(), nullable=False),
        sa.Column("watched_fraction", sa.Float(), nullable=False),
        _ts("last_heartbeat_at", nullable=True),
        sa.Column("best_score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        _fk(PROGRESS, "enrolment_id", ENROLMENTS),
        _fk(PROGRESS, "course_id", COURSES),
        _fk(PROGRESS, "lesson_id", LESSONS),
        sa.UniqueConstraint("enrolment_id", "lesson_id", name="uq_education_progress_lesson"),
    )
    _index(PROGRESS, "enrolment_id", "course_id", "lesson_id")
    op.create_index("ix_education_progress_user", PROGRESS, ["tenant_id", "user_id"])
    for table in TABLES:
        enable_tenant_rls(op, table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(op, table)
        op.drop_table(table)
