"""Question banks, their questions and quizzes: what instructors create and edit.

Lookups go through the tenant's session, so another tenant's id is simply not found (404).
Limits (questions per bank, questions per quiz) come from ``QuizSettings``.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar.exceptions import ClientException, NotFoundException
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.quizzes.models import BankQuestion, QuestionBank, Quiz, utcnow
from backplane_education.quizzes.questions import Question, question_from_builtins
from backplane_education.quizzes.schemas import (
    BankIn,
    BankOut,
    DrawIn,
    QuestionOut,
    QuizIn,
    QuizOut,
)
from backplane_education.quizzes.settings import QuizSettings


def conflict(message: str, **extra: Any) -> ClientException:
    return ClientException(detail=message, status_code=409, extra=extra or None)


async def find_bank(db: AsyncSession, bank_id: uuid.UUID) -> QuestionBank:
    bank = await db.get(QuestionBank, bank_id)
    if bank is None:
        raise NotFoundException(detail=f"no question bank {bank_id}")
    return bank


async def find_question(db: AsyncSession, question_id: uuid.UUID) -> BankQuestion:
    question = await db.get(BankQuestion, question_id)
    if question is None:
        raise NotFoundException(detail=f"no question {question_id}")
    return question


async def find_quiz(db: AsyncSession, quiz_id: uuid.UUID, *, published_only: bool = False) -> Quiz:
    quiz = await db.get(Quiz, quiz_id)
    if quiz is None or (published_only and not quiz.published):
        raise NotFoundException(detail=f"no quiz {quiz_id}")
    return quiz


async def bank_out(db: AsyncSession, bank: QuestionBank) -> BankOut:
    count = await db.scalar(
        select(func.count()).select_from(BankQuestion).where(BankQuestion.bank_id == bank.id)
    )
    return BankOut(
        id=bank.id,
        name=bank.name,
        description=bank.description,
        questions=int(count or 0),
        created_at=bank.created_at,
    )


async def create_bank(db: AsyncSession, data: BankIn, user_id: uuid.UUID | None) -> QuestionBank:
    taken = await db.scalar(select(QuestionBank.id).where(QuestionBank.name == data.name))
    if taken is not None:
        raise conflict(f"a question bank named {data.name!r} exists")
    bank = QuestionBank(name=data.name, description=data.description, created_by=user_id)
    db.add(bank)
    await db.flush()
    return bank


def question_out(row: BankQuestion) -> QuestionOut:
    return QuestionOut(
        id=row.id,
        bank_id=row.bank_id,
        revision=row.revision,
        question=question_from_builtins(row.body),
        updated_at=row.updated_at,
    )


async def add_question(
    db: AsyncSession,
    bank: QuestionBank,
    question: Question,
    user_id: uuid.UUID | None,
    limits: QuizSettings,
) -> BankQuestion:
    count = await db.scalar(
        select(func.count()).select_from(BankQuestion).where(BankQuestion.bank_id == bank.id)
    )
    if int(count or 0) >= limits.max_questions_per_bank:
        raise conflict(
            f"bank {bank.name!r} holds the most questions allowed "
            f"(max_questions_per_bank={limits.max_questions_per_bank})"
        )
    row = BankQuestion(
        bank_id=bank.id,
        type=_type_of(question),
        body=msgspec.to_builtins(question),
        created_by=user_id,
    )
    db.add(row)
    await db.flush()
    return row


def replace_question(row: BankQuestion, question: Question) -> None:
    """A new revision; attempts already started keep the snapshot they drew."""
    row.type = _type_of(question)
    row.body = msgspec.to_builtins(question)
    row.revision += 1
    row.updated_at = utcnow()


def _type_of(question: Question) -> str:
    return str(type(question).__struct_config__.tag)


async def check_draws(db: AsyncSession, data: QuizIn, limits: QuizSettings) -> list[dict[str, Any]]:
    """The draws as stored, after checking that every bank and question exists in the tenant
    and that an attempt would hold at least one and at most ``max_questions_per_quiz``."""
    stored: list[dict[str, Any]] = []
    size = 0
    for draw in data.draws:
        if draw.bank_id is not None:
            bank = await find_bank(db, draw.bank_id)
            available = (await bank_out(db, bank)).questions
            stored.append({"bank_id": str(bank.id), "count": draw.count})
        else:
            ids = list(dict.fromkeys(draw.question_ids or []))
            found = set(await db.scalars(select(BankQuestion.id).where(BankQuestion.id.in_(ids))))
            missing = [str(qid) for qid in ids if qid not in found]
            if missing:
                raise NotFoundException(detail=f"no question {missing[0]}")
            available = len(ids)
            stored.append({"question_ids": [str(qid) for qid in ids], "count": draw.count})
        size += available if draw.count is None else min(draw.count, available)
    if size > limits.max_questions_per_quiz:
        raise ClientException(
            detail=f"an attempt would hold {size} questions "
            f"(max_questions_per_quiz={limits.max_questions_per_quiz})"
        )
    return stored


async def save_quiz(
    db: AsyncSession,
    quiz: Quiz | None,
    data: QuizIn,
    user_id: uuid.UUID | None,
    limits: QuizSettings,
) -> Quiz:
    """Create (``quiz`` None) or replace a quiz's settings; started attempts keep theirs."""
    draws = await check_draws(db, data, limits)
    if quiz is None:
        quiz = Quiz(created_by=user_id)
        db.add(quiz)
    quiz.title = data.title
    quiz.description = data.description
    quiz.draws = draws
    quiz.shuffle_questions = data.shuffle_questions
    quiz.shuffle_options = data.shuffle_options
    quiz.time_limit_s = data.time_limit_s
    quiz.max_attempts = data.max_attempts
    quiz.passing_score = data.passing_score
    quiz.published = data.published
    quiz.updated_at = utcnow()
    await db.flush()
    return quiz


def _draw_in(stored: dict[str, Any]) -> DrawIn:
    bank_id = stored.get("bank_id")
    ids = stored.get("question_ids")
    return DrawIn(
        bank_id=uuid.UUID(bank_id) if bank_id else None,
        question_ids=[uuid.UUID(qid) for qid in ids] if ids else None,
        count=stored.get("count"),
    )


def quiz_out(quiz: Quiz) -> QuizOut:
    return QuizOut(
        id=quiz.id,
        title=quiz.title,
        description=quiz.description,
        draws=[_draw_in(draw) for draw in quiz.draws],
        shuffle_questions=quiz.shuffle_questions,
        shuffle_options=quiz.shuffle_options,
        time_limit_s=quiz.time_limit_s,
        max_attempts=quiz.max_attempts,
        passing_score=quiz.passing_score,
        published=quiz.published,
        created_at=quiz.created_at,
        updated_at=quiz.updated_at,
    )
