"""Instructors' routes: question banks, questions (with their keys) and quizzes, and every
learner's attempts at a quiz. All need ``education.quizzes.manage``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, Principal, requires
from backplane_education.quizzes import authoring
from backplane_education.quizzes.attempts import attempt_summary
from backplane_education.quizzes.declarations import QUIZZES_MANAGE, quiz_settings
from backplane_education.quizzes.models import BankQuestion, QuestionBank, Quiz, QuizAttempt
from backplane_education.quizzes.schemas import (
    AttemptSummary,
    BankIn,
    BankOut,
    QuestionIn,
    QuestionOut,
    QuizIn,
    QuizOut,
)
from backplane_education.quizzes.stats import QuizStats, quiz_stats

Req = Request[Any, Any, Any]
TAGS = ["education"]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Rows per page")]
After = Annotated[uuid.UUID | None, QueryParameter(description="Last id of the previous page")]


def _user(request: Req) -> uuid.UUID | None:
    principal = request.user
    return principal.user_id if isinstance(principal, Principal) else None


class QuestionBanksController(Controller):
    path = "/quiz-banks"
    tags = TAGS
    guards = [requires(QUIZZES_MANAGE)]

    @get("/")
    async def list_banks(
        self, db: NamedDependency[AsyncSession], limit: Limit = 100, after: After = None
    ) -> list[BankOut]:
        query = select(QuestionBank).order_by(QuestionBank.id).limit(limit)
        if after is not None:
            query = query.where(QuestionBank.id > after)
        return [await authoring.bank_out(db, bank) for bank in await db.scalars(query)]

    @post("/")
    async def create_bank(
        self, request: Req, data: JSONBody[BankIn], kernel: NamedDependency[Kernel]
    ) -> BankOut:
        bank = await authoring.create_bank(kernel.db, data, _user(request))
        await kernel.audit.record(
            "education.question_bank_created", target=("question_bank", bank.id)
        )
        return await authoring.bank_out(kernel.db, bank)

    @get("/{bank_id:uuid}")
    async def get_bank(
        self, bank_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> BankOut:
        return await authoring.bank_out(db, await authoring.find_bank(db, bank_id))

    @delete("/{bank_id:uuid}")
    async def delete_bank(
        self, bank_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete a bank and its questions; attempts already started keep their snapshot."""
        bank = await authoring.find_bank(kernel.db, bank_id)
        await kernel.db.delete(bank)
        await kernel.db.flush()
        await kernel.audit.record(
            "education.question_bank_deleted",
            target=("question_bank", bank_id),
            details={"name": bank.name},
        )

    @get("/{bank_id:uuid}/questions")
    async def list_questions(
        self,
        bank_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        limit: Limit = 100,
        after: After = None,
    ) -> list[QuestionOut]:
        bank = await authoring.find_bank(db, bank_id)
        query = select(BankQuestion).where(BankQuestion.bank_id == bank.id)
        if after is not None:
            query = query.where(BankQuestion.id > after)
        rows = await db.scalars(query.order_by(BankQuestion.id).limit(limit))
        return [authoring.question_out(row) for row in rows]

    @post("/{bank_id:uuid}/questions")
    async def add_question(
        self,
        request: Req,
        bank_id: FromPath[uuid.UUID],
        data: JSONBody[QuestionIn],
        kernel: NamedDependency[Kernel],
    ) -> QuestionOut:
        bank = await authoring.find_bank(kernel.db, bank_id)
        row = await authoring.add_question(
            kernel.db, bank, data.question, _user(request), quiz_settings(kernel)
        )
        await kernel.audit.record(
            "education.question_created",
            target=("question", row.id),
            details={"bank": str(bank.id)},
        )
        return authoring.question_out(row)


class QuestionsController(Controller):
    path = "/quiz-questions"
    tags = TAGS
    guards = [requires(QUIZZES_MANAGE)]

    @get("/{question_id:uuid}")
    async def get_question(
        self, question_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> QuestionOut:
        return authoring.question_out(await authoring.find_question(db, question_id))

    @put("/{question_id:uuid}")
    async def replace_question(
        self,
        question_id: FromPath[uuid.UUID],
        data: JSONBody[QuestionIn],
        kernel: NamedDependency[Kernel],
    ) -> QuestionOut:
        """Edit a question (its key too): a new revision for attempts started from now on."""
        row = await authoring.find_question(kernel.db, question_id)
        authoring.replace_question(row, data.question)
        await kernel.db.flush()
        await kernel.audit.record(
            "education.question_updated",
            target=("question", row.id),
            details={"revision": row.revision},
        )
        return authoring.question_out(row)

    @delete("/{question_id:uuid}")
    async def delete_question(
        self, question_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        row = await authoring.find_question(kernel.db, question_id)
        await kernel.db.delete(row)
        await kernel.db.flush()
        await kernel.audit.record("education.question_deleted", target=("question", question_id))


class QuizzesController(Controller):
    path = "/quizzes"
    tags = TAGS
    guards = [requires(QUIZZES_MANAGE)]

    @get("/")
    async def list_quizzes(
        self, db: NamedDependency[AsyncSession], limit: Limit = 100, after: After = None
    ) -> list[QuizOut]:
        query = select(Quiz).order_by(Quiz.id).limit(limit)
        if after is not None:
            query = query.where(Quiz.id > after)
        return [authoring.quiz_out(quiz) for quiz in await db.scalars(query)]

    @post("/")
    async def create_quiz(
        self, request: Req, data: JSONBody[QuizIn], kernel: NamedDependency[Kernel]
    ) -> QuizOut:
        quiz = await authoring.save_quiz(
            kernel.db, None, data, _user(request), quiz_settings(kernel)
        )
        await kernel.audit.record("education.quiz_created", target=("quiz", quiz.id))
        return authoring.quiz_out(quiz)

    @get("/{quiz_id:uuid}")
    async def get_quiz(
        self, quiz_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> QuizOut:
        return authoring.quiz_out(await authoring.find_quiz(db, quiz_id))

    @put("/{quiz_id:uuid}")
    async def replace_quiz(
        self,
        request: Req,
        quiz_id: FromPath[uuid.UUID],
        data: JSONBody[QuizIn],
        kernel: NamedDependency[Kernel],
    ) -> QuizOut:
        """Change a quiz; attempts already started keep the questions, limits and passing score
        they started with."""
        quiz = await authoring.find_quiz(kernel.db, quiz_id)
        await authoring.save_quiz(kernel.db, quiz, data, _user(request), quiz_settings(kernel))
        await kernel.audit.record("education.quiz_updated", target=("quiz", quiz.id))
        return authoring.quiz_out(quiz)

    @delete("/{quiz_id:uuid}")
    async def delete_quiz(
        self, quiz_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete a quiz and every attempt at it."""
        quiz = await authoring.find_quiz(kernel.db, quiz_id)
        await kernel.db.delete(quiz)
        await kernel.db.flush()
        await kernel.audit.record(
            "education.quiz_deleted", target=("quiz", quiz_id), details={"title": quiz.title}
        )

    @get("/{quiz_id:uuid}/attempts")
    async def list_attempts(
        self,
        quiz_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        limit: Limit = 100,
        after: After = None,
    ) -> list[AttemptSummary]:
        """Every learner's attempts at the quiz, with their scores."""
        quiz = await authoring.find_quiz(db, quiz_id)
        query = select(QuizAttempt).where(QuizAttempt.quiz_id == quiz.id)
        if after is not None:
            query = query.where(QuizAttempt.id > after)
        rows = await db.scalars(query.order_by(QuizAttempt.id).limit(limit))
        return [attempt_summary(row) for row in rows]

    @get("/{quiz_id:uuid}/stats")
    async def stats(
        self, quiz_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> QuizStats:
        """Attempts, learners, average score and pass rate, and each question's average score."""
        quiz = await authoring.find_quiz(db, quiz_id)
        return await quiz_stats(db, quiz.id)
