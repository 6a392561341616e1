"""The quizzes' tables (migration ``education_0002``), all tenant-owned with row-level security.

An attempt keeps a snapshot of the questions it drew (``paper``): an instructor editing or
deleting a question later changes neither what the learner sees mid-attempt nor how a
submitted attempt was graded. The snapshot holds the key, so attempts are read by learners only
through the learner structs (``learner.py``), never returned as rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


def utcnow() -> datetime:
    return datetime.now(UTC)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class QuestionBank(TenantScoped, Base):
    """A named pool of questions quizzes draw from."""

    __tablename__ = "education_question_banks"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_education_question_banks_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BankQuestion(TenantScoped, Base):
    """One question of a bank: ``body`` is the instructor's struct (``questions.Question``)
    with its key; ``revision`` counts edits."""

    __tablename__ = "education_questions"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["bank_id"], ["education_question_banks.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    bank_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    type: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Quiz(TenantScoped, Base):
    """A quiz: what it draws (``draws``: ``[{"bank_id", "count"} | {"question_ids"}]``), how
    it is taken (limits, shuffling) and what passes. Course lessons of kind quiz name it by
    ``quiz_id``; a graded attempt is reported to them (``quizzes/courses.py``)."""

    __tablename__ = "education_quizzes"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(4000), default="")
    draws: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shuffle_questions: Mapped[bool] = mapped_column(Boolean, default=True)
    shuffle_options: Mapped[bool] = mapped_column(Boolean, default=True)
    time_limit_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    passing_score: Mapped[float] = mapped_column(Float, default=60.0)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuizAttempt(TenantScoped, Base):
    """One learner's attempt. ``number`` is unique per quiz and learner and never above the
    quiz's ``max_attempts``: two starts at once cannot both take the last number."""

    __tablename__ = "education_quiz_attempts"
    __table_args__ = (
        _tenant_fk(),
        ForeignKeyConstraint(["quiz_id"], ["education_quizzes.id"], ondelete="CASCADE"),
        UniqueConstraint("quiz_id", "user_id", "number", name="uq_education_quiz_attempts_number"),
        Index("ix_education_quiz_attempts_user", "tenant_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    quiz_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    number: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    shuffle_options: Mapped[bool] = mapped_column(Boolean)
    passing_score: Mapped[float] = mapped_column(Float)
    paper: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """``[{"question_id", "revision", "question"}]`` in the order shown."""
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Position (as a string) → the learner's answer, as saved."""
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    """Submitted (or closed) after the deadline: graded as of the deadline."""
    results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    points_awarded: Mapped[float | None] = mapped_column(Float, nullable=True)
    points_possible: Mapped[float | None] = mapped_column(Float, nullable=True)
    percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
