"""The quizzes' tables under the data-rights hooks.

Attempts are about their learner: a person's export holds their attempts (questions drawn,
answers, scores) and their erasure deletes them. Banks, questions and quizzes are the tenant's
course material: a person's export holds those they authored, and erasure keeps them without
their author.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update

from backplane_education.quizzes.models import BankQuestion, QuestionBank, Quiz, QuizAttempt

AUTHORED = (QuestionBank, BankQuestion, Quiz)


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every quiz row of the tenant; for a person, their attempts and what they authored."""
    if subject is not None and subject.user_id is None:
        return
    for table in AUTHORED:
        where = [] if subject is None else [table.created_by == subject.user_id]
        await archive.add_table(table, *where)
    where = [] if subject is None else [QuizAttempt.user_id == subject.user_id]
    await archive.add_table(QuizAttempt, *where)


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Delete the person's attempts; keep the material they wrote, without their name."""
    changed: dict[str, int] = {}
    if subject.user_id is None:
        return changed
    result: Any = await kernel.db.execute(
        delete(QuizAttempt)
        .where(QuizAttempt.user_id == subject.user_id)
        .execution_options(synchronize_session=False)
    )
    changed[QuizAttempt.__tablename__] = int(result.rowcount or 0)
    for table in AUTHORED:
        result = await kernel.db.execute(
            update(table)
            .where(table.created_by == subject.user_id)
            .values(created_by=None)
            .execution_options(synchronize_session=False)
        )
        changed[table.__tablename__] = int(result.rowcount or 0)
    return changed
