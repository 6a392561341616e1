"""What the rest of the plugin (dashboards, recommendations) reads of quizzes: a learner's
standing per quiz. Only closed attempts have a score (submitted, or timed out and closed)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import msgspec
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.quizzes.models import Quiz, QuizAttempt


class QuizStanding(msgspec.Struct, frozen=True, kw_only=True):
    quiz_id: uuid.UUID
    attempts: int
    best_percent: float | None
    passed: bool


async def standings(
    db: AsyncSession, user_id: uuid.UUID, *, quiz_ids: Collection[uuid.UUID] | None = None
) -> list[QuizStanding]:
    """The learner's standing on each quiz (those of ``quiz_ids``, or all); quizzes they
    never attempted appear with ``attempts`` 0."""
    query = (
        select(
            Quiz.id,
            func.count(QuizAttempt.id),
            func.max(QuizAttempt.percent),
            func.max(case((QuizAttempt.passed.is_(True), 1), else_=0)),
        )
        .outerjoin(
            QuizAttempt,
            (QuizAttempt.quiz_id == Quiz.id) & (QuizAttempt.user_id == user_id),
        )
        .group_by(Quiz.id)
    )
    if quiz_ids is not None:
        query = query.where(Quiz.id.in_(list(quiz_ids)))
    return [
        QuizStanding(
            quiz_id=quiz_id,
            attempts=int(count),
            best_percent=None if best is None else float(best),
            passed=bool(passed),
        )
        for quiz_id, count, best, passed in await db.execute(query)
    ]
