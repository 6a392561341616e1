"""A learner's standing per quiz (closed attempts only), as dashboards read it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from backplane_education.quizzes.models import Quiz, QuizAttempt
from backplane_education.quizzes.outcomes import standings

TENANT = uuid.uuid4()


@pytest.fixture
async def db(backplane_plugins: Any, backplane_settings: Any) -> AsyncIterator[AsyncSession]:
    """A plain session on the migrated SQLite database (tenancy is the kernel's concern, not
    these queries'); rolled back at the end."""
    engine = create_async_engine(backplane_settings.resolved_database_url())
    async with async_sessionmaker(engine)() as session:
        yield session
        await session.rollback()
    await engine.dispose()


def quiz() -> Quiz:
    return Quiz(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        title="q",
        description="",
        draws=[],
        shuffle_questions=True,
        shuffle_options=True,
        passing_score=50.0,
        published=True,
    )


def attempt(quiz_id: uuid.UUID, user: uuid.UUID, number: int, percent: float | None) -> QuizAttempt:
    return QuizAttempt(
        tenant_id=TENANT,
        quiz_id=quiz_id,
        user_id=user,
        number=number,
        seed=1,
        shuffle_options=True,
        passing_score=50.0,
        paper=[],
        answers={},
        status="in_progress" if percent is None else "submitted",
        late=False,
        percent=percent,
        passed=None if percent is None else percent >= 50,
    )


async def test_standings(db: AsyncSession) -> None:
    learner, other = uuid.uuid4(), uuid.uuid4()
    passed_quiz, failed_quiz, open_quiz, untried = quiz(), quiz(), quiz(), quiz()
    db.add_all([passed_quiz, failed_quiz, open_quiz, untried])
    await db.flush()
    db.add_all(
        [
            attempt(passed_quiz.id, learner, 1, 20.0),
            attempt(passed_quiz.id, learner, 2, 80.0),
            attempt(failed_quiz.id, learner, 1, 40.0),
            attempt(failed_quiz.id, other, 1, 100.0),
            attempt(open_quiz.id, learner, 1, None),
        ]
    )
    await db.flush()

    found = {s.quiz_id: s for s in await standings(db, learner)}
    assert (found[passed_quiz.id].attempts, found[passed_quiz.id].best_percent) == (2, 80.0)
    assert found[passed_quiz.id].passed is True
    assert (found[failed_quiz.id].passed, found[failed_quiz.id].best_percent) == (False, 40.0)
    assert (found[open_quiz.id].attempts, found[open_quiz.id].best_percent) == (1, None)
    assert (found[untried.id].attempts, found[untried.id].passed) == (0, False)
    only = await standings(db, learner, quiz_ids=[failed_quiz.id])
    assert [s.quiz_id for s in only] == [failed_quiz.id]
    theirs = {s.quiz_id: s for s in await standings(db, other)}
    assert (theirs[failed_quiz.id].passed, theirs[failed_quiz.id].best_percent) == (True, 100.0)
