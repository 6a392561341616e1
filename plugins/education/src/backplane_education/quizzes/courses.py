"""Quizzes inside courses. A lesson of kind quiz names its quiz (``Lesson.quiz_id``):

- a learner may start such a quiz only from a course they follow — enrolled, on a version that
  has the lesson, its prerequisites done (a quiz no lesson names is open to every learner);
- each graded attempt is reported to those lessons with ``progress.record_quiz_result``
  (score 0..1, passed), which keeps the best score and completes the lesson — and maybe the
  course, under its completion rule — on a pass.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from backplane import Kernel
from backplane_education.common import EducationError
from backplane_education.models import Enrolment, Lesson
from backplane_education.progress import check_prerequisites, enrolment_for, record_quiz_result
from backplane_education.quizzes.models import QuizAttempt


async def _followed_lessons(kernel: Kernel, quiz_id: uuid.UUID, user_id: uuid.UUID) -> list[Lesson]:
    """Quiz lessons showing ``quiz_id`` in the course versions the learner follows."""
    query = (
        select(Lesson)
        .join(Enrolment, Enrolment.version_id == Lesson.version_id)
        .where(
            Lesson.kind == "quiz",
            Lesson.quiz_id == quiz_id,
            Enrolment.user_id == user_id,
            Enrolment.status != "unenrolled",
        )
    )
    return list(await kernel.db.scalars(query))


async def check_may_start(kernel: Kernel, quiz_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Refuse (403/409, the courses' own answers) a quiz of a course the learner does not
    follow, or whose lesson's prerequisites they have not done."""
    named = await kernel.db.scalar(
        select(Lesson.id).where(Lesson.kind == "quiz", Lesson.quiz_id == quiz_id).limit(1)
    )
    if named is None:
        return
    lessons = await _followed_lessons(kernel, quiz_id, user_id)
    if not lessons:
        raise EducationError(403, "this quiz belongs to a course: enrol in it first")
    refusal: EducationError | None = None
    for lesson in lessons:
        try:
            await check_prerequisites(kernel, await enrolment_for(kernel, lesson, user_id), lesson)
        except EducationError as error:
            refusal = error
        else:
            return
    assert refusal is not None
    raise refusal


async def report_to_courses(kernel: Kernel, attempt: QuizAttempt) -> None:
    """Report a graded attempt to every lesson showing its quiz in the learner's courses."""
    if attempt.percent is None:
        return
    for lesson in await _followed_lessons(kernel, attempt.quiz_id, attempt.user_id):
        await record_quiz_result(
            kernel,
            lesson_id=lesson.id,
            user_id=attempt.user_id,
            score=round(attempt.percent / 100.0, 6),
            passed=bool(attempt.passed),
        )
