"""Attempts: start, answer, submit — the rules the server enforces, whatever the client does.

- **Attempt limit.** Attempt numbers are unique per quiz and learner (a database constraint)
  and a start takes the next number only while it is within ``max_attempts``: two starts at
  once race for the same number and the loser gets 409, so the limit is never exceeded.
  A learner has at most one attempt in progress (a second start: 409 naming it).
- **Time limit.** The deadline is fixed at the start (``started_at + time_limit_s``). Answers
  arriving later than the deadline plus ``time_grace_s`` are refused (409). A submit after it is
  accepted and **graded as of the deadline** — only answers saved by then count, and the
  attempt is marked ``late``. An attempt nobody submits is closed as ``timed_out``, graded as of
  its deadline, the next time the learner reads it, starts another or lists their attempts.
- **Integrity.** Saving an answer and submitting lock the attempt's row, so no answer lands
  after a submit. The learner's view is rebuilt from the snapshot with ``present``: no key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar.exceptions import ClientException, NotFoundException
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.quizzes.authoring import conflict
from backplane_education.quizzes.declarations import ATTEMPT_CLOSED
from backplane_education.quizzes.grading import AnswerError, check_answer, grade, total
from backplane_education.quizzes.learner import Answer
from backplane_education.quizzes.models import BankQuestion, Quiz, QuizAttempt
from backplane_education.quizzes.presenting import present
from backplane_education.quizzes.questions import Question, question_from_builtins
from backplane_education.quizzes.schemas import AttemptOut, AttemptScore, AttemptSummary
from backplane_education.quizzes.selection import Draw, draw_paper, new_seed
from backplane_education.quizzes.settings import QuizSettings


def utcnow() -> datetime:
    """The server's clock: every deadline decision reads it (and tests move it)."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _draws(db: AsyncSession, quiz: Quiz) -> list[Draw]:
    """The quiz's draws over the questions that exist now, in a stable order."""
    draws: list[Draw] = []
    for stored in quiz.draws:
        if stored.get("bank_id"):
            query = select(BankQuestion.id).where(
                BankQuestion.bank_id == uuid.UUID(stored["bank_id"])
            )
            ids = [
                str(qid)
                for qid in await db.scalars(
                    query.order_by(BankQuestion.created_at, BankQuestion.id)
                )
            ]
        else:
            wanted = [uuid.UUID(qid) for qid in stored.get("question_ids") or []]
            found = set(
                await db.scalars(select(BankQuestion.id).where(BankQuestion.id.in_(wanted)))
            )
            ids = [str(qid) for qid in wanted if qid in found]
        draws.append(Draw(question_ids=ids, count=stored.get("count")))
    return draws


async def _paper(db: AsyncSession, quiz: Quiz, seed: int) -> list[dict[str, Any]]:
    ids = draw_paper(seed, await _draws(db, quiz), shuffle=quiz.shuffle_questions)
    rows = {
        str(row.id): row
        for row in await db.scalars(
            select(BankQuestion).where(BankQuestion.id.in_([uuid.UUID(qid) for qid in ids]))
        )
    }
    return [
        {"question_id": qid, "revision": rows[qid].revision, "question": rows[qid].body}
        for qid in ids
        if qid in rows
    ]


async def mine(db: AsyncSession, quiz_id: uuid.UUID, user_id: uuid.UUID) -> list[QuizAttempt]:
    query = select(QuizAttempt).where(
        QuizAttempt.quiz_id == quiz_id, QuizAttempt.user_id == user_id
    )
    return list(await db.scalars(query.order_by(QuizAttempt.number)))


def _expired(attempt: QuizAttempt, now: datetime, grace_s: float) -> bool:
    if attempt.deadline_at is None:
        return False
    return now > aware(attempt.deadline_at) + timedelta(seconds=grace_s)


def close(attempt: QuizAttempt, now: datetime, grace_s: float) -> None:
    """Grade and close ``attempt`` (status ``submitted``, or ``timed_out`` when its deadline
    passed without a submit). Answers are only ever saved in time, so grading what is saved
    is grading as of the deadline."""
    results = []
    for position, entry in enumerate(attempt.paper):
        question = question_from_builtins(entry["question"])
        raw = attempt.answers.get(str(position))
        answer: Answer | None = None if raw is None else msgspec.convert(raw, type=Answer)
        results.append(
            grade(question, answer, attempt.seed, position, shuffle_options=attempt.shuffle_options)
        )
    score = total(results, attempt.passing_score)
    late = _expired(attempt, now, grace_s)
    attempt.results = msgspec.to_builtins(results)
    attempt.points_awarded = score.points_awarded
    attempt.points_possible = score.points_possible
    attempt.percent = score.percent
    attempt.passed = score.passed
    attempt.late = late
    attempt.submitted_at = now
    attempt.status = "submitted"


async def announce(kernel: Any, attempt: QuizAttempt) -> None:
    """Report a graded attempt to the course lessons showing its quiz and emit
    ``education.quiz_attempt_closed``, in the attempt's transaction."""
    from backplane_education.quizzes.courses import report_to_courses

    await report_to_courses(kernel, attempt)
    await kernel.events.emit(
        ATTEMPT_CLOSED,
        {
            "quiz_id": str(attempt.quiz_id),
            "attempt_id": str(attempt.id),
            "user_id": str(attempt.user_id),
            "number": attempt.number,
            "status": attempt.status,
            "late": attempt.late,
            "percent": attempt.percent,
            "passed": attempt.passed,
        },
    )


async def close_expired(kernel: Any, attempts: list[QuizAttempt], grace_s: float) -> None:
    """Close the learner's attempts whose time ran out unsubmitted (``timed_out``)."""
    now = utcnow()
    for attempt in attempts:
        if attempt.status == "in_progress" and _expired(attempt, now, grace_s):
            close(attempt, now, grace_s)
            attempt.status = "timed_out"
            attempt.submitted_at = aware(attempt.deadline_at or now)
            await kernel.db.flush()
            await announce(kernel, attempt)


async def start(kernel: Any, quiz: Quiz, user_id: uuid.UUID, limits: QuizSettings) -> QuizAttempt:
    """Start the learner's next attempt, within the quiz's limits (see the module's rules)."""
    db: AsyncSession = kernel.db
    attempts = await mine(db, quiz.id, user_id)
    await close_expired(kernel, attempts, limits.time_grace_s)
    open_attempt = next((a for a in attempts if a.status == "in_progress"), None)
    if open_attempt is not None:
        raise conflict(
            f"attempt {open_attempt.number} is in progress: submit it first",
            attempt_id=str(open_attempt.id),
        )
    number = max((a.number for a in attempts), default=0) + 1
    if quiz.max_attempts is not None and number > quiz.max_attempts:
        raise conflict(f"no attempts left: all {quiz.max_attempts} have been used")
    seed = new_seed()
    paper = await _paper(db, quiz, seed)
    if not paper:
        raise conflict("this quiz has no questions yet")
    now = utcnow()
    deadline = None if quiz.time_limit_s is None else now + timedelta(seconds=quiz.time_limit_s)
    attempt = QuizAttempt(
        quiz_id=quiz.id,
        user_id=user_id,
        number=number,
        seed=seed,
        shuffle_options=quiz.shuffle_options,
        passing_score=quiz.passing_score,
        paper=paper,
        answers={},
        status="in_progress",
        started_at=now,
        deadline_at=deadline,
    )
    # No savepoint: the request fails as a whole (and rolls back) when another start took the
    # number first. (On SQLite a savepoint opening the transaction would commit on release.)
    db.add(attempt)
    try:
        await db.flush()
    except IntegrityError:
        raise conflict(
            f"attempt {number} was started at the same time by another request"
        ) from None
    return attempt


async def write_lock_quiz(db: AsyncSession, quiz_id: uuid.UUID) -> None:
    """On SQLite, take the database's write lock as the transaction's first statement (a no-op
    UPDATE of the quiz): a start reads before it writes, and a deferred SQLite transaction that
    read fails with "database is locked" when another writer commits in between. PostgreSQL
    needs nothing: the unique attempt number settles races without serialising the quiz."""
    if db.get_bind().dialect.name != "sqlite":
        return
    await db.execute(
        update(Quiz)
        .where(Quiz.id == quiz_id)
        .values(published=Quiz.published)
        .execution_options(synchronize_session=False)
    )


async def locked(db: AsyncSession, attempt_id: uuid.UUID, user_id: uuid.UUID) -> QuizAttempt:
    """The learner's own attempt, its row locked until the transaction ends: a no-op UPDATE
    first (a row lock on PostgreSQL, the write lock on SQLite, taken before anything is read),
    then the row."""
    await db.execute(
        update(QuizAttempt)
        .where(QuizAttempt.id == attempt_id, QuizAttempt.user_id == user_id)
        .values(number=QuizAttempt.number)
        .execution_options(synchronize_session=False)
    )
    attempt = await db.scalar(
        select(QuizAttempt)
        .where(QuizAttempt.id == attempt_id, QuizAttempt.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if attempt is None:
        raise NotFoundException(detail=f"no attempt {attempt_id}")
    return attempt


def _question(attempt: QuizAttempt, position: int) -> Question:
    if not 0 <= position < len(attempt.paper):
        raise NotFoundException(detail=f"attempt has no question {position}")
    return question_from_builtins(attempt.paper[position]["question"])


async def save_answer(
    db: AsyncSession,
    attempt_id: uuid.UUID,
    user_id: uuid.UUID,
    position: int,
    answer: Answer,
    limits: QuizSettings,
) -> QuizAttempt:
    attempt = await locked(db, attempt_id, user_id)
    if attempt.status != "in_progress":
        raise conflict(f"attempt {attempt.number} is closed ({attempt.status})")
    if _expired(attempt, utcnow(), limits.time_grace_s):
        raise conflict("time is up: the attempt's deadline has passed")
    question = _question(attempt, position)
    try:
        check_answer(
            question, answer, attempt.seed, position, shuffle_options=attempt.shuffle_options
        )
    except AnswerError as error:
        raise ClientException(detail=str(error)) from None
    attempt.answers = {**attempt.answers, str(position): msgspec.to_builtins(answer)}
    await db.flush()
    return attempt


async def submit(
    db: AsyncSession, attempt_id: uuid.UUID, user_id: uuid.UUID, limits: QuizSettings
) -> QuizAttempt:
    attempt = await locked(db, attempt_id, user_id)
    if attempt.status != "in_progress":
        raise conflict(f"attempt {attempt.number} is already closed ({attempt.status})")
    close(attempt, utcnow(), limits.time_grace_s)
    await db.flush()
    return attempt


def attempt_out(attempt: QuizAttempt) -> AttemptOut:
    """The learner's view of their attempt (no key, ever: built from learner structs)."""
    now = utcnow()
    questions = [
        present(
            question_from_builtins(entry["question"]),
            attempt.seed,
            position,
            shuffle_options=attempt.shuffle_options,
        )
        for position, entry in enumerate(attempt.paper)
    ]
    answers: dict[str, Answer] = msgspec.convert(attempt.answers, type=dict[str, Answer])
    deadline = None if attempt.deadline_at is None else aware(attempt.deadline_at)
    left = None
    if deadline is not None and attempt.status == "in_progress":
        left = max(0.0, round((deadline - now).total_seconds(), 3))
    score = None
    if attempt.results is not None and attempt.percent is not None:
        score = msgspec.convert(
            {
                "points_awarded": attempt.points_awarded,
                "points_possible": attempt.points_possible,
                "percent": attempt.percent,
                "passed": bool(attempt.passed),
                "questions": attempt.results,
            },
            type=AttemptScore,
        )
    return AttemptOut(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        number=attempt.number,
        status=attempt.status,  # type: ignore[arg-type]
        started_at=aware(attempt.started_at),
        deadline_at=deadline,
        seconds_left=left,
        submitted_at=None if attempt.submitted_at is None else aware(attempt.submitted_at),
        late=attempt.late,
        questions=questions,
        answers=answers,
        score=score,
    )


def attempt_summary(attempt: QuizAttempt) -> AttemptSummary:
    return AttemptSummary(
        id=attempt.id,
        quiz_id=attempt.quiz_id,
        user_id=attempt.user_id,
        number=attempt.number,
        status=attempt.status,  # type: ignore[arg-type]
        started_at=aware(attempt.started_at),
        submitted_at=None if attempt.submitted_at is None else aware(attempt.submitted_at),
        late=attempt.late,
        percent=attempt.percent,
        passed=attempt.passed,
    )


async def attempts_used(db: AsyncSession, quiz_id: uuid.UUID, user_id: uuid.UUID) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(QuizAttempt)
        .where(QuizAttempt.quiz_id == quiz_id, QuizAttempt.user_id == user_id)
    )
    return int(count or 0)
