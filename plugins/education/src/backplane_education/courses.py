"""Courses and their versions: the catalogue entry, drafting, publishing.

A course starts with draft version 1. Publishing freezes the draft (its modules and lessons are
never changed again) and makes it the version new enrolments get; further edits go to a new
draft copied from the latest version, lesson keys kept, so progress and prerequisites follow.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_education.common import EducationError, not_found
from backplane_education.models import Course, CourseModule, CourseVersion, Lesson, now

Difficulty = Literal["beginner", "intermediate", "advanced"]
EnrolmentMode = Literal["open", "code", "admin"]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=50, pattern=r"^[\w][\w .+#-]*$")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Summary = Annotated[str, msgspec.Meta(max_length=4000)]
Code = Annotated[str, msgspec.Meta(min_length=6, max_length=100)]
Seats = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
TemplateName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
"""The name of a documents-plugin template of the tenant (the course's certificate)."""


class CourseIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new course. ``enrolment`` ``code`` needs ``enrolment_code`` (kept hashed only)."""

    title: Title
    summary: Summary = ""
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    difficulty: Difficulty = "beginner"
    enrolment: EnrolmentMode = "open"
    enrolment_code: Code | None = None
    seat_limit: Seats | None = None
    prerequisite_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    certificate_template: TemplateName | None = None
    """The documents template of its certificates (None: the ``certificate_template`` setting)."""


class CoursePatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Changes to a course's catalogue entry; absent fields stay (``seat_limit`` null: none)."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    summary: Summary | msgspec.UnsetType = msgspec.UNSET
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    difficulty: Difficulty | msgspec.UnsetType = msgspec.UNSET
    enrolment: EnrolmentMode | msgspec.UnsetType = msgspec.UNSET
    enrolment_code: Code | msgspec.UnsetType = msgspec.UNSET
    seat_limit: Seats | msgspec.UnsetType | None = msgspec.UNSET
    prerequisite_ids: (
        Annotated[list[uuid.UUID], msgspec.Meta(max_length=20)] | msgspec.UnsetType
    ) = msgspec.UNSET
    certificate_template: TemplateName | msgspec.UnsetType | None = msgspec.UNSET


class CourseOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    title: str
    summary: str
    tags: list[str]
    difficulty: str
    enrolment: str
    seat_limit: int | None
    seats_taken: int
    prerequisite_ids: list[str]
    latest_version: int
    published_version: int | None
    created_at: datetime
    updated_at: datetime
    certificate_template: str | None = None


class VersionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    course_id: uuid.UUID
    number: int
    status: str
    published_at: datetime | None
    created_at: datetime


def course_out(course: Course) -> CourseOut:
    return CourseOut(
        id=course.id,
        title=course.title,
        summary=course.summary,
        tags=list(course.tags),
        difficulty=course.difficulty,
        enrolment=course.enrolment,
        seat_limit=course.seat_limit,
        seats_taken=course.seats_taken,
        prerequisite_ids=list(course.prerequisite_ids),
        latest_version=course.latest_version,
        published_version=course.published_version,
        created_at=course.created_at,
        updated_at=course.updated_at,
        certificate_template=course.certificate_template,
    )


def version_out(version: CourseVersion) -> VersionOut:
    return VersionOut(
        id=version.id,
        course_id=version.course_id,
        number=version.number,
        status=version.status,
        published_at=version.published_at,
        created_at=version.created_at,
    )


def hash_code(course_id: uuid.UUID, code: str) -> str:
    """An enrolment code as stored: salted with the course, never kept in clear."""
    return hashlib.sha256(f"{course_id}:{code}".encode()).hexdigest()


def code_matches(course: Course, code: str | None) -> bool:
    if course.code_hash is None or code is None:
        return False
    return hmac.compare_digest(course.code_hash, hash_code(course.id, code))


async def find_course(db: AsyncSession, course_id: uuid.UUID) -> Course:
    course = await db.get(Course, course_id)
    if course is None:
        raise not_found("course")
    return course


async def find_version(db: AsyncSession, course_id: uuid.UUID, number: int) -> CourseVersion:
    version = await db.scalar(
        select(CourseVersion).where(
            CourseVersion.course_id == course_id, CourseVersion.number == number
        )
    )
    if version is None:
        raise not_found(f"version {number} of the course")
    return version


async def _check_prerequisites(
    db: AsyncSession, course_id: uuid.UUID, ids: list[uuid.UUID]
) -> None:
    for required in ids:
        if required == course_id:
            raise EducationError(400, "a course cannot require itself")
        if await db.get(Course, required) is None:
            raise EducationError(400, f"prerequisite course {required} not found")


def _check_code(mode: str, code_hash: str | None) -> None:
    if mode == "code" and code_hash is None:
        raise EducationError(400, "enrolment 'code' needs an enrolment_code")


async def create_course(db: AsyncSession, data: CourseIn, author: uuid.UUID | None) -> Course:
    """The course and its draft version 1."""
    course_id = uuid.uuid4()
    await _check_prerequisites(db, course_id, data.prerequisite_ids)
    code_hash = hash_code(course_id, data.enrolment_code) if data.enrolment_code else None
    _check_code(data.enrolment, code_hash)
    course = Course(
        id=course_id,
        title=data.title,
        summary=data.summary,
        tags=sorted(set(data.tags)),
        difficulty=data.difficulty,
        enrolment=data.enrolment,
        code_hash=code_hash,
        seat_limit=data.seat_limit,
        seats_taken=0,
        prerequisite_ids=[str(i) for i in data.prerequisite_ids],
        latest_version=1,
        certificate_template=data.certificate_template,
        created_by=author,
    )
    db.add(course)
    await db.flush()
    db.add(CourseVersion(course_id=course_id, number=1, status="draft", created_by=author))
    await db.flush()
    return course


async def patch_course(db: AsyncSession, course: Course, data: CoursePatch) -> Course:
    fields = {f: getattr(data, f) for f in data.__struct_fields__}
    given = {k: v for k, v in fields.items() if v is not msgspec.UNSET}
    if "prerequisite_ids" in given:
        await _check_prerequisites(db, course.id, given["prerequisite_ids"])
        course.prerequisite_ids = [str(i) for i in given.pop("prerequisite_ids")]
    if "enrolment_code" in given:
        course.code_hash = hash_code(course.id, given.pop("enrolment_code"))
    if "tags" in given:
        course.tags = sorted(set(given.pop("tags")))
    lower = given.get("seat_limit")
    if lower is not None and lower < course.seats_taken:
        raise EducationError(
            409, f"{course.seats_taken} seats are taken: the limit cannot be lower"
        )
    for name, value in given.items():
        setattr(course, name, value)
    _check_code(course.enrolment, course.code_hash)
    course.updated_at = now()
    await db.flush()
    return course


async def new_draft(db: AsyncSession, course: Course, author: uuid.UUID | None) -> CourseVersion:
    """A new draft copied from the latest version, which must be published (one draft at a
    time). Lesson keys are kept; module and lesson ids are new."""
    latest = await find_version(db, course.id, course.latest_version)
    if latest.status != "published":
        raise EducationError(409, f"version {latest.number} is still a draft: edit it")
    number = latest.number + 1
    claimed = await db.execute(
        update(Course)
        .where(Course.id == course.id, Course.latest_version == latest.number)
        .values(latest_version=number, updated_at=now())
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise EducationError(409, "another draft was made at the same time")
    draft = CourseVersion(course_id=course.id, number=number, status="draft", created_by=author)
    db.add(draft)
    await db.flush()
    modules = (
        await db.scalars(select(CourseModule).where(CourseModule.version_id == latest.id))
    ).all()
    lessons = (await db.scalars(select(Lesson).where(Lesson.version_id == latest.id))).all()
    new_module_ids = {m.id: uuid.uuid4() for m in modules}
    for module in modules:
        db.add(
            CourseModule(
                id=new_module_ids[module.id],
                course_id=course.id,
                version_id=draft.id,
                position=module.position,
                title=module.title,
            )
        )
    await db.flush()
    copied: tuple[str, ...] = ("key", "position", "kind", "title", "body", "file_id")
    copied += ("captions_file_id", "chapters", "url", "quiz_id", "duration_s", "required")
    copied += ("prerequisite_keys",)
    for lesson in lessons:
        values = {name: getattr(lesson, name) for name in copied}
        db.add(
            Lesson(
                course_id=course.id,
                version_id=draft.id,
                module_id=new_module_ids[lesson.module_id],
                **values,
            )
        )
    await db.flush()
    await db.refresh(course)
    return draft


async def publish(db: AsyncSession, course: Course, number: int) -> CourseVersion:
    """Freeze draft ``number`` and offer it to new enrolments."""
    version = await find_version(db, course.id, number)
    if version.status == "published":
        raise EducationError(409, f"version {number} is already published")
    lessons = (await db.scalars(select(Lesson).where(Lesson.version_id == version.id))).all()
    if not lessons:
        raise EducationError(409, "a version without lessons cannot be published")
    version.status = "published"
    version.published_at = now()
    course.published_version = number
    course.updated_at = now()
    await db.flush()
    return version
