"""The plugin's tables under the data-rights hooks (``backplane tenants export``, a person's
export and erasure).

A learner's enrolments and lesson progress are theirs: exported for them and deleted when they
are erased (seats they held are given back). Courses are the tenant's: they stay, without their
author; an erased instructor stops teaching.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from backplane_education.models import (
    Cohort,
    Course,
    CourseModule,
    CourseVersion,
    Enrolment,
    Instructor,
    Lesson,
    LessonProgress,
)

TENANT_TABLES = (Course, CourseVersion, CourseModule, Lesson, Instructor, Cohort)
PERSONAL_TABLES = (Enrolment, LessonProgress)


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    """Every row of the tenant; for a person, their enrolments, progress, teaching and the
    courses they authored."""
    if subject is None:
        for table in (*TENANT_TABLES, *PERSONAL_TABLES):
            await archive.add_table(table)
        return
    if subject.user_id is None:
        return
    user = subject.user_id
    await archive.add_table(Enrolment, Enrolment.user_id == user)
    await archive.add_table(LessonProgress, LessonProgress.user_id == user)
    await archive.add_table(Instructor, Instructor.user_id == user)
    await archive.add_table(Course, Course.created_by == user)
    await archive.add_table(CourseVersion, CourseVersion.created_by == user)


async def _release_seats(db: Any, user: Any) -> None:
    """Seats held by the person's active or completed enrolments go back to their courses and
    cohorts before the enrolments are deleted."""
    held = (Enrolment.user_id == user, Enrolment.status != "unenrolled")
    per_course = (
        await db.execute(
            select(Enrolment.course_id, func.count()).where(*held).group_by(Enrolment.course_id)
        )
    ).all()
    for course_id, count in per_course:
        await db.execute(
            update(Course)
            .where(Course.id == course_id)
            .values(seats_taken=Course.seats_taken - count)
            .execution_options(synchronize_session=False)
        )
    per_cohort = (
        await db.execute(
            select(Enrolment.cohort_id, func.count())
            .where(*held, Enrolment.cohort_id.is_not(None))
            .group_by(Enrolment.cohort_id)
        )
    ).all()
    for cohort_id, count in per_cohort:
        await db.execute(
            update(Cohort)
            .where(Cohort.id == cohort_id)
            .values(seats_taken=Cohort.seats_taken - count)
            .execution_options(synchronize_session=False)
        )


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    """Delete the person's progress and enrolments (their seats released) and their teaching;
    courses and versions they authored stay, without their author."""
    changed: dict[str, int] = {}
    if subject.user_id is None:
        return changed
    db, user = kernel.db, subject.user_id
    await _release_seats(db, user)
    for table in (LessonProgress, Enrolment, Instructor):
        result: Any = await db.execute(
            delete(table).where(table.user_id == user).execution_options(synchronize_session=False)
        )
        changed[table.__tablename__] = int(result.rowcount or 0)
    for authored in (Course, CourseVersion):
        result = await db.execute(
            update(authored)
            .where(authored.created_by == user)
            .values(created_by=None)
            .execution_options(synchronize_session=False)
        )
        changed[authored.__tablename__] = int(result.rowcount or 0)
    return changed
