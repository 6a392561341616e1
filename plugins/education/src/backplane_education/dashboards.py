"""The dashboards' data: a learner's courses, an instructor's funnel for a course (or one of
its cohorts: how many enrolled, started, completed; per lesson how many started and completed
it, how many stopped after it; average quiz scores) and the admin's overview."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy import func, select

from backplane import Kernel, requires
from backplane_education.common import ERROR_HANDLERS, TAGS, learner_id, require_teacher
from backplane_education.courses import find_course
from backplane_education.models import (
    Course,
    CourseModule,
    CourseVersion,
    Enrolment,
    Lesson,
    LessonProgress,
    now,
)
from backplane_education.plugin import LEARN, MANAGE, TEACH


class LearnerCourse(msgspec.Struct, kw_only=True):
    course_id: uuid.UUID
    title: str
    version: int
    status: str
    percent: float
    time_spent_s: float
    next_lesson_id: uuid.UUID | None
    """The first required lesson not done yet, in course order."""
    last_activity_at: datetime | None


class LessonFunnel(msgspec.Struct, kw_only=True):
    lesson_key: uuid.UUID
    title: str
    kind: str
    started: int
    completed: int
    stopped_after: int
    """Learners still in the course whose furthest completed lesson is this one."""
    average_score: float | None
    """Quiz lessons: the mean of learners' best scores (0..1)."""


class CourseFunnel(msgspec.Struct, kw_only=True):
    course_id: uuid.UUID
    cohort_id: uuid.UUID | None
    enrolled: int
    started: int
    completed: int
    unenrolled: int
    average_percent: float
    lessons: list[LessonFunnel]


class CourseLine(msgspec.Struct, kw_only=True):
    course_id: uuid.UUID
    title: str
    published: bool
    enrolled: int
    completed: int


class AdminOverview(msgspec.Struct, kw_only=True):
    courses: int
    published: int
    enrolments: dict[str, int]
    completions_30d: int
    active_learners_30d: int
    per_course: list[CourseLine]


async def ordered_lessons(kernel: Kernel, version_id: uuid.UUID) -> list[Lesson]:
    rows = await kernel.db.execute(
        select(Lesson)
        .join(CourseModule, CourseModule.id == Lesson.module_id)
        .where(Lesson.version_id == version_id)
        .order_by(CourseModule.position, Lesson.position, Lesson.id)
    )
    return list(rows.scalars())


async def course_funnel(
    kernel: Kernel, course: Course, cohort_id: uuid.UUID | None
) -> CourseFunnel:
    """Counted by lesson key over the learners of every version, laid out in the order of
    the published (else latest) version."""
    number = course.published_version or course.latest_version
    version = await kernel.db.scalar(
        select(CourseVersion).where(
            CourseVersion.course_id == course.id, CourseVersion.number == number
        )
    )
    lessons = await ordered_lessons(kernel, version.id) if version is not None else []
    enrol_query = select(Enrolment).where(Enrolment.course_id == course.id)
    if cohort_id is not None:
        enrol_query = enrol_query.where(Enrolment.cohort_id == cohort_id)
    enrolments = list((await kernel.db.scalars(enrol_query)).all())
    ids = [e.id for e in enrolments]
    progress = (
        list(
            (
                await kernel.db.scalars(
                    select(LessonProgress).where(LessonProgress.enrolment_id.in_(ids))
                )
            ).all()
        )
        if ids
        else []
    )
    order = {lesson.key: n for n, lesson in enumerate(lessons)}
    furthest: dict[uuid.UUID, int] = {}
    for row in progress:
        if row.completed_at is not None and row.lesson_key in order:
            position = order[row.lesson_key]
            furthest[row.enrolment_id] = max(furthest.get(row.enrolment_id, -1), position)
    active = {e.id for e in enrolments if e.status == "active"}
    funnel = []
    for lesson in lessons:
        rows = [r for r in progress if r.lesson_key == lesson.key]
        scores = [r.best_score for r in rows if r.best_score is not None]
        funnel.append(
            LessonFunnel(
                lesson_key=lesson.key,
                title=lesson.title,
                kind=lesson.kind,
                started=len(rows),
                completed=sum(1 for r in rows if r.completed_at is not None),
                stopped_after=sum(
                    1 for e, p in furthest.items() if e in active and p == order[lesson.key]
                ),
                average_score=round(sum(scores) / len(scores), 4) if scores else None,
            )
        )
    present = [e for e in enrolments if e.status != "unenrolled"]
    return CourseFunnel(
        course_id=course.id,
        cohort_id=cohort_id,
        enrolled=len(present),
        started=len({r.enrolment_id for r in progress} & {e.id for e in present}),
        completed=sum(1 for e in present if e.status == "completed"),
        unenrolled=len(enrolments) - len(present),
        average_percent=round(sum(e.percent for e in present) / len(present), 2)
        if present
        else 0.0,
        lessons=funnel,
    )


class DashboardsController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/dashboard/learner", guards=[requires(LEARN)], summary="The caller's courses")
    async def learner(self, kernel: NamedDependency[Kernel]) -> list[LearnerCourse]:
        user = learner_id(kernel)
        rows = (
            await kernel.db.execute(
                select(Enrolment, Course.title)
                .join(Course, Course.id == Enrolment.course_id)
                .where(Enrolment.user_id == user, Enrolment.status != "unenrolled")
                .order_by(Enrolment.enrolled_at, Enrolment.id)
            )
        ).all()
        out = []
        for enrolment, title in rows:
            progress = (
                await kernel.db.scalars(
                    select(LessonProgress).where(LessonProgress.enrolment_id == enrolment.id)
                )
            ).all()
            done = {p.lesson_id for p in progress if p.completed_at is not None}
            lessons = await ordered_lessons(kernel, enrolment.version_id)
            upcoming = [x for x in lessons if x.required and x.id not in done]
            moments = [p.last_heartbeat_at or p.started_at for p in progress]
            moments += [p.completed_at for p in progress if p.completed_at is not None]
            out.append(
                LearnerCourse(
                    course_id=enrolment.course_id,
                    title=title,
                    version=enrolment.version_number,
                    status=enrolment.status,
                    percent=enrolment.percent,
                    time_spent_s=round(sum(p.time_spent_s for p in progress), 3),
                    next_lesson_id=upcoming[0].id if upcoming else None,
                    last_activity_at=max(moments) if moments else None,
                )
            )
        return out

    @get("/courses/{course_id:uuid}/dashboard", guards=[requires(TEACH)])
    async def instructor(
        self,
        course_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        cohort_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
    ) -> CourseFunnel:
        course = await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        return await course_funnel(kernel, course, cohort_id)

    @get("/dashboard/admin", guards=[requires(MANAGE)], summary="The tenant's overview")
    async def admin(self, kernel: NamedDependency[Kernel]) -> AdminOverview:
        db = kernel.db
        since = now() - timedelta(days=30)
        courses = (await db.scalars(select(Course).order_by(Course.title, Course.id))).all()
        by_status = dict(
            (await db.execute(select(Enrolment.status, func.count()).group_by(Enrolment.status)))
            .tuples()
            .all()
        )
        per_course = (
            await db.execute(
                select(Enrolment.course_id, Enrolment.status, func.count()).group_by(
                    Enrolment.course_id, Enrolment.status
                )
            )
        ).all()
        counts: dict[tuple[uuid.UUID, str], int] = {(c, s): n for c, s, n in per_course}
        completions = await db.scalar(select(func.count()).where(Enrolment.completed_at >= since))
        learners = await db.scalar(
            select(func.count(func.distinct(LessonProgress.user_id))).where(
                (LessonProgress.started_at >= since) | (LessonProgress.last_heartbeat_at >= since)
            )
        )
        return AdminOverview(
            courses=len(courses),
            published=sum(1 for c in courses if c.published_version is not None),
            enrolments={s: int(by_status.get(s, 0)) for s in ("active", "completed", "unenrolled")},
            completions_30d=int(completions or 0),
            active_learners_30d=int(learners or 0),
            per_course=[
                CourseLine(
                    course_id=c.id,
                    title=c.title,
                    published=c.published_version is not None,
                    enrolled=counts.get((c.id, "active"), 0) + counts.get((c.id, "completed"), 0),
                    completed=counts.get((c.id, "completed"), 0),
                )
                for c in courses
            ],
        )
