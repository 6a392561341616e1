"""Enrolment routes: self-enrolment (open or by code), by an admin, in bulk from CSV, cohorts,
unenrolling and moving a learner to another version."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_education.common import (
    ERROR_HANDLERS,
    TAGS,
    EducationError,
    caller_id,
    can_manage,
    learner_id,
    require_teacher,
)
from backplane_education.courses import code_matches, find_course
from backplane_education.enrolment import (
    EnrolmentOut,
    enrol,
    enrolment_out,
    find_enrolment,
    move_to_version,
    unenrol,
)
from backplane_education.enrolment_bulk import BulkResult, enrol_csv
from backplane_education.models import Cohort, Enrolment
from backplane_education.plugin import LEARN, MANAGE, READ, TEACH

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SelfEnrolIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    cohort_id: uuid.UUID | None = None


class AdminEnrolIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    user_id: uuid.UUID
    cohort_id: uuid.UUID | None = None


class MoveIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Annotated[int, msgspec.Meta(ge=1)]


class CohortIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    starts_at: datetime
    ends_at: datetime
    seat_limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class CohortOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    course_id: uuid.UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    seat_limit: int | None
    seats_taken: int


def cohort_out(row: Cohort) -> CohortOut:
    return CohortOut(
        id=row.id,
        course_id=row.course_id,
        name=row.name,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        seat_limit=row.seat_limit,
        seats_taken=row.seats_taken,
    )


async def own_or_managed(kernel: Kernel, enrolment_id: uuid.UUID) -> Enrolment:
    """The enrolment, if it is the caller's or the caller teaches its course."""
    enrolment = await find_enrolment(kernel, enrolment_id)
    if enrolment.user_id != caller_id(kernel):
        await require_teacher(kernel, enrolment.course_id)
    return enrolment


class EnrolmentController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/courses/{course_id:uuid}/enrol", guards=[requires(LEARN)], summary="Enrol oneself")
    async def enrol_self(
        self,
        course_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        data: JSONBody[SelfEnrolIn | None] = None,
    ) -> EnrolmentOut:
        user = learner_id(kernel)
        course = await find_course(kernel.db, course_id)
        wish = data or SelfEnrolIn()
        if course.published_version is None:
            raise EducationError(404, "course not found")
        if course.enrolment == "admin":
            raise EducationError(403, "learners are enrolled in this course by an admin")
        if course.enrolment == "code" and not code_matches(course, wish.code):
            raise EducationError(403, "this course needs the right enrolment code")
        source: Literal["open", "code"] = "code" if course.enrolment == "code" else "open"
        row = await enrol(kernel, course, user, source=source, cohort_id=wish.cohort_id)
        return enrolment_out(row)

    @post("/courses/{course_id:uuid}/enrolments", guards=[requires(MANAGE)])
    async def enrol_member(
        self,
        course_id: FromPath[uuid.UUID],
        data: JSONBody[AdminEnrolIn],
        kernel: NamedDependency[Kernel],
    ) -> EnrolmentOut:
        course = await find_course(kernel.db, course_id)
        row = await enrol(
            kernel,
            course,
            data.user_id,
            source="admin",
            cohort_id=data.cohort_id,
            enrolled_by=caller_id(kernel),
        )
        await kernel.audit.record(
            "education.learner_enrolled",
            target=("course", course_id),
            details={"user_id": str(data.user_id)},
        )
        return enrolment_out(row)

    @post(
        "/courses/{course_id:uuid}/enrolments/bulk",
        guards=[requires(MANAGE)],
        summary="Enrol learners from a CSV body (columns user_id and optional cohort_id)",
    )
    async def enrol_bulk(
        self,
        course_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        kernel: NamedDependency[Kernel],
    ) -> BulkResult:
        course = await find_course(kernel.db, course_id)
        body = await request.body()
        result = await enrol_csv(kernel, course, body)
        await kernel.audit.record(
            "education.bulk_enrolment",
            target=("course", course_id),
            details={"enrolled": result.enrolled, "failed": result.failed},
        )
        return result

    @get("/courses/{course_id:uuid}/enrolments", guards=[requires(TEACH)])
    async def list_enrolments(
        self,
        course_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        status: Literal["active", "completed", "unenrolled"] | None = None,
        cohort_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
    ) -> list[EnrolmentOut]:
        await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        query = select(Enrolment).where(Enrolment.course_id == course_id)
        if status is not None:
            query = query.where(Enrolment.status == status)
        if cohort_id is not None:
            query = query.where(Enrolment.cohort_id == cohort_id)
        rows = await kernel.db.scalars(query.order_by(Enrolment.enrolled_at, Enrolment.id))
        return [enrolment_out(r) for r in rows]

    @get("/enrolments/{enrolment_id:uuid}", guards=[requires(READ)])
    async def get_enrolment(
        self, enrolment_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> EnrolmentOut:
        return enrolment_out(await own_or_managed(kernel, enrolment_id))

    @post("/enrolments/{enrolment_id:uuid}/unenrol", guards=[requires(LEARN)])
    async def unenrol(
        self, enrolment_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> EnrolmentOut:
        """Leave a course (oneself), or remove a learner (managers)."""
        enrolment = await find_enrolment(kernel, enrolment_id)
        if enrolment.user_id != caller_id(kernel) and not can_manage(kernel):
            raise EducationError(403, "only the learner or an education manager may unenrol")
        row = await unenrol(kernel, enrolment)
        if row.user_id != caller_id(kernel):
            await kernel.audit.record(
                "education.learner_unenrolled",
                target=("course", row.course_id),
                details={"user_id": str(row.user_id)},
            )
        return enrolment_out(row)

    @post("/enrolments/{enrolment_id:uuid}/move", guards=[requires(MANAGE)])
    async def move(
        self,
        enrolment_id: FromPath[uuid.UUID],
        data: JSONBody[MoveIn],
        kernel: NamedDependency[Kernel],
    ) -> EnrolmentOut:
        """Move a learner to another published version (progress follows lesson keys)."""
        enrolment = await find_enrolment(kernel, enrolment_id)
        return enrolment_out(await move_to_version(kernel, enrolment, data.version))

    @post("/courses/{course_id:uuid}/cohorts", guards=[requires(MANAGE)])
    async def create_cohort(
        self,
        course_id: FromPath[uuid.UUID],
        data: JSONBody[CohortIn],
        kernel: NamedDependency[Kernel],
    ) -> CohortOut:
        await find_course(kernel.db, course_id)
        if data.starts_at.tzinfo is None or data.ends_at.tzinfo is None:
            raise EducationError(400, "starts_at and ends_at need a timezone")
        if data.ends_at <= data.starts_at:
            raise EducationError(400, "ends_at must be after starts_at")
        cohort = Cohort(
            course_id=course_id,
            name=data.name,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            seat_limit=data.seat_limit,
            seats_taken=0,
        )
        kernel.db.add(cohort)
        await kernel.db.flush()
        return cohort_out(cohort)

    @get("/courses/{course_id:uuid}/cohorts", guards=[requires(READ)])
    async def list_cohorts(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[CohortOut]:
        course = await find_course(kernel.db, course_id)
        if course.published_version is None:
            await require_teacher(kernel, course_id)
        rows = await kernel.db.scalars(
            select(Cohort)
            .where(Cohort.course_id == course_id)
            .order_by(Cohort.starts_at, Cohort.id)
        )
        return [cohort_out(r) for r in rows]
