"""Enrolment: who may join a course, on which version, in which cohort, within which seats.

Seats are counters on the course and the cohort, taken and given back by single atomic
``UPDATE ... WHERE seats_taken < seat_limit`` statements: on PostgreSQL concurrent enrolments
queue on the row and each re-checks the limit after the one before it commits, so the limit is
never exceeded however many learners race for the last seat (tested).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError

from backplane import Kernel
from backplane_education.common import EducationError, not_found
from backplane_education.models import Cohort, Course, CourseVersion, Enrolment, now
from backplane_education.plugin import ENROLLED, ENROLMENTS_METER

Source = Literal["open", "code", "admin", "bulk"]


class EnrolmentOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    version: int
    cohort_id: uuid.UUID | None
    status: str
    source: str
    percent: float
    enrolled_at: datetime
    completed_at: datetime | None
    unenrolled_at: datetime | None


def enrolment_out(row: Enrolment) -> EnrolmentOut:
    return EnrolmentOut(
        id=row.id,
        course_id=row.course_id,
        user_id=row.user_id,
        version=row.version_number,
        cohort_id=row.cohort_id,
        status=row.status,
        source=row.source,
        percent=row.percent,
        enrolled_at=row.enrolled_at,
        completed_at=row.completed_at,
        unenrolled_at=row.unenrolled_at,
    )


async def find_enrolment(kernel: Kernel, enrolment_id: uuid.UUID) -> Enrolment:
    row = await kernel.db.get(Enrolment, enrolment_id)
    if row is None:
        raise not_found("enrolment")
    return row


async def find_cohort(kernel: Kernel, course_id: uuid.UUID, cohort_id: uuid.UUID) -> Cohort:
    cohort = await kernel.db.get(Cohort, cohort_id)
    if cohort is None or cohort.course_id != course_id:
        raise not_found("cohort")
    return cohort


def _changed(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


async def _take_seat(kernel: Kernel, table: Any, row_id: uuid.UUID, what: str) -> None:
    taken = await kernel.db.execute(
        update(table)
        .where(
            table.id == row_id,
            (table.seat_limit.is_(None)) | (table.seats_taken < table.seat_limit),
        )
        .values(seats_taken=table.seats_taken + 1)
        .execution_options(synchronize_session=False)
    )
    if _changed(taken) != 1:
        raise EducationError(409, f"no seats left in this {what}")


async def release_seat(kernel: Kernel, enrolment: Enrolment) -> None:
    """Give back the seat an active or completed enrolment holds (course and cohort)."""
    for table, row_id in ((Course, enrolment.course_id), (Cohort, enrolment.cohort_id)):
        if row_id is None:
            continue
        await kernel.db.execute(
            update(table)
            .where(table.id == row_id, table.seats_taken > 0)
            .values(seats_taken=table.seats_taken - 1)
            .execution_options(synchronize_session=False)
        )


async def _check_prerequisites(kernel: Kernel, course: Course, user_id: uuid.UUID) -> None:
    if not course.prerequisite_ids:
        return
    done = set(
        await kernel.db.scalars(
            select(Enrolment.course_id).where(
                Enrolment.user_id == user_id, Enrolment.status == "completed"
            )
        )
    )
    missing = [i for i in course.prerequisite_ids if uuid.UUID(i) not in done]
    if missing:
        titles = await kernel.db.scalars(
            select(Course.title).where(Course.id.in_([uuid.UUID(i) for i in missing]))
        )
        raise EducationError(409, f"complete these courses first: {', '.join(titles)}")


async def enrol(
    kernel: Kernel,
    course: Course,
    user_id: uuid.UUID,
    *,
    source: Source,
    cohort_id: uuid.UUID | None = None,
    enrolled_by: uuid.UUID | None = None,
) -> Enrolment:
    """Enrol ``user_id`` in the course's published version (re-enrolling a learner who left
    reuses their row: their progress is kept). 409 when the course is not published, the
    learner already enrolled, prerequisites are missing, the cohort has ended, or no seat is
    left; the caller checked who may enrol whom."""
    if course.published_version is None:
        raise EducationError(409, "the course is not published yet")
    await _check_prerequisites(kernel, course, user_id)
    cohort = await find_cohort(kernel, course.id, cohort_id) if cohort_id else None
    if cohort is not None and cohort.ends_at <= now():
        raise EducationError(409, f"cohort {cohort.name!r} has ended")
    existing = await kernel.db.scalar(
        select(Enrolment).where(Enrolment.course_id == course.id, Enrolment.user_id == user_id)
    )
    if existing is not None and existing.status != "unenrolled":
        raise EducationError(409, "already enrolled in this course")
    version = await kernel.db.scalar(
        select(CourseVersion).where(
            CourseVersion.course_id == course.id,
            CourseVersion.number == course.published_version,
        )
    )
    assert version is not None  # published_version always names a version
    await _take_seat(kernel, Course, course.id, "course")
    if cohort is not None:
        await _take_seat(kernel, Cohort, cohort.id, "cohort")
    if existing is None:
        row = Enrolment(course_id=course.id, user_id=user_id, percent=0.0)
        kernel.db.add(row)
    else:
        row = existing
    row.version_id, row.version_number = version.id, version.number
    row.cohort_id, row.status, row.source = cohort_id, "active", source
    row.enrolled_by, row.enrolled_at = enrolled_by, now()
    row.completed_at = row.unenrolled_at = None
    try:
        async with kernel.db.begin_nested():
            await kernel.db.flush()
    except IntegrityError:
        raise EducationError(409, "already enrolled in this course") from None
    stamp = f"education.enrolment:{row.id}:{row.enrolled_at.timestamp()}"
    await kernel.usage.record(ENROLMENTS_METER, transaction_id=stamp)
    await kernel.events.emit(
        ENROLLED,
        {
            "course_id": str(course.id),
            "enrolment_id": str(row.id),
            "user_id": str(user_id),
            "version": version.number,
            "source": source,
        },
    )
    return row


async def unenrol(kernel: Kernel, enrolment: Enrolment) -> Enrolment:
    """Leave the course: the seat goes back, progress is kept for a return."""
    if enrolment.status == "unenrolled":
        raise EducationError(409, "not enrolled any more")
    await release_seat(kernel, enrolment)
    enrolment.status = "unenrolled"
    enrolment.unenrolled_at = now()
    await kernel.db.flush()
    return enrolment


async def move_to_version(kernel: Kernel, enrolment: Enrolment, number: int) -> Enrolment:
    """Move a learner to another published version of their course; progress follows lesson
    keys (see :func:`backplane_education.progress.carry_progress`)."""
    from backplane_education.progress import carry_progress, recompute

    version = await kernel.db.scalar(
        select(CourseVersion).where(
            CourseVersion.course_id == enrolment.course_id, CourseVersion.number == number
        )
    )
    if version is None:
        raise not_found(f"version {number} of the course")
    if version.status != "published":
        raise EducationError(409, f"version {number} is not published")
    if version.id == enrolment.version_id:
        return enrolment
    await carry_progress(kernel, enrolment, version)
    enrolment.version_id, enrolment.version_number = version.id, version.number
    await kernel.db.flush()
    await recompute(kernel, enrolment)
    return enrolment
