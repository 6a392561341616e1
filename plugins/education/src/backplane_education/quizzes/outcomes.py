"""What the rest of the plugin reads of quizzes: a learner's standing per quiz, for the course
completion rule ("all required lessons and passing quizzes") and the dashboards.

Only closed attempts count (submitted, or timed out and closed); an attempt whose time ran out
but that nobody has read since counts once it is closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import msgspec
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.quizzes.models import Quiz, QuizAttempt


class QuizStanding(msgspec.Struct, frozen=True, kw_only=True):
    quiz_id: uuid.UUID
    lesson_id: uuid.UUID | None
    attempts: int
    best_percent: float | None
    passed: bool


async def standings(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    quiz_ids: Collection[uuid.UUID] | None = None,
    lesson_ids: Collection[uuid.UUID] | None = None,
) -> list[QuizStanding]:
    """The learner's standing on each quiz asked for (by id, or by the lesson it belongs to);
    quizzes they never attempted appear with ``attempts`` 0."""
    query = (
        select(
            Quiz.id,
            Quiz.lesson_id,
            func.count(QuizAttempt.id),
            func.max(QuizAttempt.percent),
            func.max(case((QuizAttempt.passed.is_(True), 1), else_=0)),
        )
        .outerjoin(
            QuizAttempt,
            (QuizAttempt.quiz_id == Quiz.id) & (QuizAttempt.user_id == user_id),
        )
        .group_by(Quiz.id, Quiz.lesson_id)
    )
    if quiz_ids is not None:
        query = query.where(Quiz.id.in_(list(quiz_ids)))
    if lesson_ids is not None:
        query = query.where(Quiz.lesson_id.in_(list(lesson_ids)))
    rows = await db.execute(query)
    return [
        QuizStanding(
            quiz_id=quiz_id,
            lesson_id=lesson_id,
            attempts=int(count),
            best_percent=None if best is None else float(best),
            passed=bool(passed),
        )
        for quiz_id, lesson_id, count, best, passed in rows
    ]


async def passed_lessons(
    db: AsyncSession, user_id: uuid.UUID, lesson_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """The quiz lessons among ``lesson_ids`` whose every quiz the learner has passed."""
    by_lesson: dict[uuid.UUID, bool] = {}
    for standing in await standings(db, user_id, lesson_ids=lesson_ids):
        if standing.lesson_id is not None:
            by_lesson[standing.lesson_id] = (
                by_lesson.get(standing.lesson_id, True) and standing.passed
            )
    return {lesson for lesson, passed in by_lesson.items() if passed}
