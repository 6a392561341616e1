"""The plugin's tables. Every row is tenant-owned (``TenantScoped``: the kernel scopes queries
to the caller's tenant, and PostgreSQL's row-level security does it again) and references its
tenant, so a deleted tenant's courses and learners' progress go with it.

A course's content lives in its versions: modules and lessons belong to one version. A published
version is never changed again (editing makes a new draft, copied from the latest), and an
enrolment records the version it follows, so learners stay on what they enrolled in until an
admin moves them. A lesson's ``key`` is the same in every version it was copied into: progress
and prerequisites follow the key across versions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


def now() -> datetime:
    """The current time, timezone-aware (every timestamp column is)."""
    return datetime.now(UTC)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def _course_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["course_id"], ["education_courses.id"], ondelete="CASCADE")


class Course(TenantScoped, Base):
    """A course of the tenant's catalogue: what describes and admits to it (editable at any
    time); its content is in :class:`CourseVersion`."""

    __tablename__ = "education_courses"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(4000), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    difficulty: Mapped[str] = mapped_column(String(16), default="beginner")
    enrolment: Mapped[str] = mapped_column(String(16), default="open")
    """``open`` (anyone of the tenant), ``code`` (with the enrolment code) or ``admin``."""
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seat_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    """Active and completed enrolments; moved by single atomic UPDATEs (the seat-limit race)."""
    prerequisite_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Courses a learner must have completed before enrolling."""
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The version new enrolments get (None: not in the catalogue yet)."""
    certificate_template: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The documents-plugin template its certificates are rendered from (None: the plugin's
    ``certificate_template`` setting)."""
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class CourseVersion(TenantScoped, Base):
    """One version of a course's content: ``draft`` (editable) or ``published`` (immutable)."""

    __tablename__ = "education_course_versions"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        UniqueConstraint("course_id", "number", name="uq_education_course_versions_number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class CourseModule(TenantScoped, Base):
    """A module (chapter) of a course version: an ordered group of lessons."""

    __tablename__ = "education_modules"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        ForeignKeyConstraint(["version_id"], ["education_course_versions.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))


class Lesson(TenantScoped, Base):
    """A lesson of a module. Its kind says which content columns it uses: ``text`` (``body``,
    Markdown), ``video`` (``file_id``, optional ``captions_file_id`` WebVTT and ``chapters``),
    ``file`` (``file_id``), ``quiz`` (``quiz_id``, a quiz of the plugin's quizzes) and ``link``
    (``url``). Files are the kernel files service's, of the same tenant."""

    __tablename__ = "education_lessons"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        ForeignKeyConstraint(["version_id"], ["education_course_versions.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["module_id"], ["education_modules.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    """Stable across the versions the lesson was copied into."""
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    module_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    file_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    captions_file_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    chapters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    quiz_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    prerequisite_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Keys of lessons of the same course to complete first."""


class Instructor(TenantScoped, Base):
    """A member who teaches a course: edits its drafts and reads its dashboard."""

    __tablename__ = "education_instructors"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        UniqueConstraint("course_id", "user_id", name="uq_education_instructors_course_user"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Cohort(TenantScoped, Base):
    """A group of a course's learners with its own dates and (optional) seat limit."""

    __tablename__ = "education_cohorts"
    __table_args__ = (_tenant_fk(), _course_fk())

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seat_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Enrolment(TenantScoped, Base):
    """A learner in a course, on one version: ``active``, ``completed`` or ``unenrolled`` (a
    re-enrolment reuses the row and takes a seat again)."""

    __tablename__ = "education_enrolments"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        ForeignKeyConstraint(["version_id"], ["education_course_versions.id"]),
        ForeignKeyConstraint(["cohort_id"], ["education_cohorts.id"], ondelete="SET NULL"),
        UniqueConstraint("course_id", "user_id", name="uq_education_enrolments_course_user"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    cohort_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    source: Mapped[str] = mapped_column(String(16))
    """``open``, ``code``, ``admin`` or ``bulk``."""
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    enrolled_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    unenrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LessonProgress(TenantScoped, Base):
    """One learner's progress on one lesson of their enrolled version."""

    __tablename__ = "education_lesson_progress"
    __table_args__ = (
        _tenant_fk(),
        _course_fk(),
        ForeignKeyConstraint(["enrolment_id"], ["education_enrolments.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["lesson_id"], ["education_lessons.id"], ondelete="CASCADE"),
        UniqueConstraint("enrolment_id", "lesson_id", name="uq_education_progress_lesson"),
        Index("ix_education_progress_user", "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    enrolment_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    course_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    lesson_key: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    time_spent_s: Mapped[float] = mapped_column(Float, default=0.0)
    position_s: Mapped[float] = mapped_column(Float, default=0.0)
    watched: Mapped[list[list[float]]] = mapped_column(JSON, default=list)
    """Merged ``[start, end]`` second ranges the player reported playing."""
    watched_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    best_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    """A quiz lesson's best score (0..1), reported by the quizzes."""
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


# The record store's tables join the same metadata (migrations, autogenerate, privacy checks).
# Certificates of completion (backplane_education.certificates), same metadata.
from backplane_education import certificates_models  # noqa: E402, F401
from backplane_education.xapi import models as xapi_models  # noqa: E402, F401
