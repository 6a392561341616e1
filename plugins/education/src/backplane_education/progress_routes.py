"""A learner's side: reading a lesson, starting and completing it, the video player's
heartbeats, their enrolments and their progress in a course."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_education.common import (
    ERROR_HANDLERS,
    TAGS,
    EducationError,
    can_manage,
    is_instructor,
    learner_id,
)
from backplane_education.courses_content import LessonOut, find_lesson, lesson_out
from backplane_education.enrolment import EnrolmentOut, enrolment_out
from backplane_education.models import Enrolment, Lesson, LessonProgress
from backplane_education.plugin import LEARN, READ
from backplane_education.progress import (
    Heartbeat,
    LessonProgressOut,
    check_prerequisites,
    complete,
    enrolment_for,
    heartbeat,
    progress_out,
    progress_row,
)


class CourseProgressOut(msgspec.Struct, kw_only=True):
    enrolment_id: uuid.UUID
    course_id: uuid.UUID
    version: int
    status: str
    percent: float
    completed_at: datetime | None
    lessons: list[LessonProgressOut]


class ProgressController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/lessons/{lesson_id:uuid}", guards=[requires(READ)], summary="A lesson's content")
    async def read_lesson(
        self, lesson_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> LessonOut:
        """Teachers read any lesson; a learner the lessons of the version they follow whose
        prerequisites they completed (text as sanitised HTML, media as signed URLs)."""
        lesson = await find_lesson(kernel.db, lesson_id)
        editor = can_manage(kernel) or await is_instructor(kernel, lesson.course_id)
        if not editor:
            enrolment = await enrolment_for(kernel, lesson, learner_id(kernel))
            await check_prerequisites(kernel, enrolment, lesson)
        return await lesson_out(kernel, lesson, kernel.plugin_settings, editor=editor)

    async def _learning(self, kernel: Kernel, lesson_id: uuid.UUID) -> tuple[Enrolment, Lesson]:
        lesson = await find_lesson(kernel.db, lesson_id)
        enrolment = await enrolment_for(kernel, lesson, learner_id(kernel))
        await check_prerequisites(kernel, enrolment, lesson)
        return enrolment, lesson

    @post("/lessons/{lesson_id:uuid}/start", guards=[requires(LEARN)])
    async def start(
        self, lesson_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> LessonProgressOut:
        enrolment, lesson = await self._learning(kernel, lesson_id)
        return progress_out(await progress_row(kernel, enrolment, lesson))

    @post("/lessons/{lesson_id:uuid}/complete", guards=[requires(LEARN)])
    async def complete(
        self, lesson_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> LessonProgressOut:
        enrolment, lesson = await self._learning(kernel, lesson_id)
        return progress_out(await complete(kernel, enrolment, lesson))

    @post(
        "/lessons/{lesson_id:uuid}/heartbeat",
        guards=[requires(LEARN)],
        summary="The video player's heartbeat (position, playing)",
    )
    async def heartbeat(
        self,
        lesson_id: FromPath[uuid.UUID],
        data: JSONBody[Heartbeat],
        kernel: NamedDependency[Kernel],
    ) -> LessonProgressOut:
        enrolment, lesson = await self._learning(kernel, lesson_id)
        return progress_out(await heartbeat(kernel, enrolment, lesson, data))

    @get("/me/enrolments", guards=[requires(LEARN)])
    async def my_enrolments(self, kernel: NamedDependency[Kernel]) -> list[EnrolmentOut]:
        rows = await kernel.db.scalars(
            select(Enrolment)
            .where(Enrolment.user_id == learner_id(kernel))
            .order_by(Enrolment.enrolled_at, Enrolment.id)
        )
        return [enrolment_out(r) for r in rows]

    @get("/me/courses/{course_id:uuid}/progress", guards=[requires(LEARN)])
    async def my_progress(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CourseProgressOut:
        enrolment = await kernel.db.scalar(
            select(Enrolment).where(
                Enrolment.course_id == course_id, Enrolment.user_id == learner_id(kernel)
            )
        )
        if enrolment is None:
            raise EducationError(404, "enrolment not found")
        rows = await kernel.db.scalars(
            select(LessonProgress)
            .where(LessonProgress.enrolment_id == enrolment.id)
            .order_by(LessonProgress.started_at, LessonProgress.id)
        )
        return CourseProgressOut(
            enrolment_id=enrolment.id,
            course_id=course_id,
            version=enrolment.version_number,
            status=enrolment.status,
            percent=enrolment.percent,
            completed_at=enrolment.completed_at,
            lessons=[progress_out(r) for r in rows],
        )
