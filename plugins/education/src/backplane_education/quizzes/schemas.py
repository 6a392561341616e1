"""Request and response bodies of the quiz routes.

Instructor bodies (``*Out`` of banks, questions and quizzes) carry the key. Learner bodies
(``LearnerQuiz``, ``AttemptOut``, ``AttemptSummary``) are built only from learner structs and
grading results: none of their types has a field for a key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from backplane_education.quizzes.grading import QuestionResult
from backplane_education.quizzes.learner import Answer, QuestionView
from backplane_education.quizzes.questions import Question

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=4000)]
AttemptStatus = Literal["in_progress", "submitted", "timed_out"]


class BankIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    description: Description = ""


class BankOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    description: str
    questions: int
    created_at: datetime


class QuestionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A question of any type (``question.type`` picks it)."""

    question: Question


class QuestionOut(msgspec.Struct, kw_only=True):
    """A bank's question with its key: instructors only."""

    id: uuid.UUID
    bank_id: uuid.UUID
    revision: int
    question: Question
    updated_at: datetime


class DrawIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Either ``count`` questions at random from bank ``bank_id`` (all when ``count`` is
    absent), or the listed ``question_ids`` (``count`` of them at random, when given)."""

    bank_id: uuid.UUID | None = None
    question_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=500)] | None = (
        None
    )
    count: Annotated[int, msgspec.Meta(ge=1, le=500)] | None = None

    def __post_init__(self) -> None:
        if (self.bank_id is None) == (self.question_ids is None):
            raise ValueError("a draw names either bank_id or question_ids")


class QuizIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Name
    description: Description = ""
    draws: Annotated[list[DrawIn], msgspec.Meta(min_length=1, max_length=50)]
    shuffle_questions: bool = True
    shuffle_options: bool = True
    time_limit_s: Annotated[int, msgspec.Meta(ge=10, le=7 * 86400)] | None = None
    """Seconds from an attempt's start to its deadline (None: untimed)."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    """Attempts per learner (None: unlimited)."""
    passing_score: Annotated[float, msgspec.Meta(ge=0, le=100)] = 60.0
    """Percent of the points an attempt needs to pass."""
    published: bool = False
    """Learners see and start published quizzes only."""


class QuizOut(QuizIn, kw_only=True):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class LearnerQuiz(msgspec.Struct, kw_only=True):
    """A quiz as a learner sees it before and between attempts."""

    id: uuid.UUID
    title: str
    description: str
    time_limit_s: int | None
    max_attempts: int | None
    attempts_used: int
    passing_score: float
    best_percent: float | None
    passed: bool


class AttemptScore(msgspec.Struct, kw_only=True):
    points_awarded: float
    points_possible: float
    percent: float
    passed: bool
    questions: list[QuestionResult]


class AttemptOut(msgspec.Struct, kw_only=True):
    """An attempt as its learner sees it: the questions drawn (no key), their saved answers,
    time left, and once closed the score with per-question feedback (still no key)."""

    id: uuid.UUID
    quiz_id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    deadline_at: datetime | None
    seconds_left: float | None
    submitted_at: datetime | None
    late: bool
    questions: list[QuestionView]
    answers: dict[str, Answer]
    score: AttemptScore | None = None


class AttemptSummary(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    quiz_id: uuid.UUID
    user_id: uuid.UUID
    number: int
    status: AttemptStatus
    started_at: datetime
    submitted_at: datetime | None
    late: bool
    percent: float | None
    passed: bool | None
