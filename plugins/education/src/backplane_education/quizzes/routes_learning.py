"""Learners' routes: a published quiz, starting an attempt, saving answers, submitting, and
reading one's own attempts with their scores and feedback. Every response is built from the
learner structs (``learner.py``, ``schemas.AttemptOut``): the key has no field to travel in.

A learner is a user (an access token, or an API key acting for its user); a key acting for no
user is refused: an attempt belongs to a person.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody

from backplane import Kernel, Principal, requires
from backplane_education.common import ERROR_HANDLERS
from backplane_education.quizzes import attempts as service
from backplane_education.quizzes.authoring import find_quiz
from backplane_education.quizzes.courses import check_may_start
from backplane_education.quizzes.declarations import ATTEMPTS_METER, QUIZZES_TAKE, quiz_settings
from backplane_education.quizzes.learner import Answer
from backplane_education.quizzes.models import QuizAttempt
from backplane_education.quizzes.schemas import AttemptOut, AttemptSummary, LearnerQuiz

Req = Request[Any, Any, Any]


def learner_of(request: Req) -> uuid.UUID:
    principal = request.user
    if not isinstance(principal, Principal) or principal.user_id is None:
        raise PermissionDeniedException(
            "quizzes are taken by a user: this credential acts for none"
        )
    return principal.user_id


class LearnerQuizzesController(Controller):
    path = "/learn"
    exception_handlers = ERROR_HANDLERS
    tags = ["education"]
    guards = [requires(QUIZZES_TAKE)]

    @get("/quizzes/{quiz_id:uuid}")
    async def get_quiz(
        self, request: Req, quiz_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> LearnerQuiz:
        """A published quiz: its rules and the learner's standing (attempts used, best score)."""
        user_id = learner_of(request)
        quiz = await find_quiz(kernel.db, quiz_id, published_only=True)
        mine = await service.mine(kernel.db, quiz.id, user_id)
        await service.close_expired(kernel, mine, quiz_settings(kernel).time_grace_s)
        scores = [a.percent for a in mine if a.percent is not None]
        return LearnerQuiz(
            id=quiz.id,
            title=quiz.title,
            description=quiz.description,
            time_limit_s=quiz.time_limit_s,
            max_attempts=quiz.max_attempts,
            attempts_used=len(mine),
            passing_score=quiz.passing_score,
            best_percent=max(scores) if scores else None,
            passed=any(a.passed for a in mine),
        )

    @post("/quizzes/{quiz_id:uuid}/attempts")
    async def start_attempt(
        self, request: Req, quiz_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AttemptOut:
        """Start an attempt (409 when one is in progress or none is left; a quiz of a course
        needs the learner enrolled and the lesson's prerequisites done)."""
        user_id = learner_of(request)
        await service.write_lock_quiz(kernel.db, quiz_id)
        quiz = await find_quiz(kernel.db, quiz_id, published_only=True)
        await check_may_start(kernel, quiz.id, user_id)
        attempt = await service.start(kernel, quiz, user_id, quiz_settings(kernel))
        await kernel.usage.record(ATTEMPTS_METER, 1, properties={"quiz_id": str(quiz.id)})
        return service.attempt_out(attempt)

    @get("/quizzes/{quiz_id:uuid}/attempts")
    async def my_attempts(
        self, request: Req, quiz_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[AttemptSummary]:
        user_id = learner_of(request)
        quiz = await find_quiz(kernel.db, quiz_id, published_only=True)
        mine = await service.mine(kernel.db, quiz.id, user_id)
        await service.close_expired(kernel, mine, quiz_settings(kernel).time_grace_s)
        return [service.attempt_summary(attempt) for attempt in mine]

    @get("/attempts/{attempt_id:uuid}")
    async def get_attempt(
        self, request: Req, attempt_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AttemptOut:
        """The attempt's questions, saved answers and time left; once closed, its score and
        per-question feedback."""
        attempt = await service.locked(kernel.db, attempt_id, learner_of(request))
        await service.close_expired(kernel, [attempt], quiz_settings(kernel).time_grace_s)
        return service.attempt_out(attempt)

    @put("/attempts/{attempt_id:uuid}/answers/{position:int}")
    async def save_answer(
        self,
        request: Req,
        attempt_id: FromPath[uuid.UUID],
        position: FromPath[int],
        data: JSONBody[Answer],
        kernel: NamedDependency[Kernel],
    ) -> AttemptOut:
        """Save (or replace) the answer to question ``position``; 409 once time is up."""
        attempt: QuizAttempt = await service.save_answer(
            kernel.db, attempt_id, learner_of(request), position, data, quiz_settings(kernel)
        )
        return service.attempt_out(attempt)

    @post("/attempts/{attempt_id:uuid}/submit", status_code=200)
    async def submit(
        self, request: Req, attempt_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AttemptOut:
        """Submit and grade the attempt; after the deadline it is graded as of the deadline."""
        attempt = await service.submit(
            kernel.db, attempt_id, learner_of(request), quiz_settings(kernel)
        )
        await service.announce(kernel, attempt)
        await kernel.audit.record(
            "education.quiz_attempt_submitted",
            target=("quiz_attempt", attempt.id),
            details={
                "quiz": str(attempt.quiz_id),
                "percent": attempt.percent,
                "late": attempt.late,
            },
        )
        return service.attempt_out(attempt)
