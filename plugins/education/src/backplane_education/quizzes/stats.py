"""A quiz's numbers for its instructors (and the dashboards): how many tried, how they scored,
and per question how well it went — the question an instructor would rewrite first."""

from __future__ import annotations

import uuid
from collections import defaultdict

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.quizzes.models import QuizAttempt


class QuestionStats(msgspec.Struct, kw_only=True):
    question_id: uuid.UUID
    answered: int
    """Closed attempts that drew the question."""
    average_score: float
    """Mean score in [0, 1] over those attempts (unanswered counts 0)."""


class QuizStats(msgspec.Struct, kw_only=True):
    attempts: int
    in_progress: int
    learners: int
    learners_passed: int
    average_percent: float | None
    """Mean percentage of closed attempts."""
    pass_rate: float | None
    """Share of closed attempts that passed."""
    questions: list[QuestionStats]


async def quiz_stats(db: AsyncSession, quiz_id: uuid.UUID) -> QuizStats:
    rows = list(await db.scalars(select(QuizAttempt).where(QuizAttempt.quiz_id == quiz_id)))
    closed = [row for row in rows if row.percent is not None]
    scores: dict[str, list[float]] = defaultdict(list)
    for row in closed:
        for entry, result in zip(row.paper, row.results or [], strict=False):
            scores[entry["question_id"]].append(float(result["score"]))
    return QuizStats(
        attempts=len(rows),
        in_progress=sum(1 for row in rows if row.status == "in_progress"),
        learners=len({row.user_id for row in rows}),
        learners_passed=len({row.user_id for row in closed if row.passed}),
        average_percent=(
            round(sum(row.percent or 0.0 for row in closed) / len(closed), 4) if closed else None
        ),
        pass_rate=round(sum(1 for row in closed if row.passed) / len(closed), 4)
        if closed
        else None,
        questions=[
            QuestionStats(
                question_id=uuid.UUID(question_id),
                answered=len(values),
                average_score=round(sum(values) / len(values), 4),
            )
            for question_id, values in sorted(scores.items())
        ],
    )
