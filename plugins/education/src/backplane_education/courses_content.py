"""Modules and lessons of a draft version, the outline of a version, and a lesson as a learner
reads it (Markdown rendered and sanitised, media behind signed URLs of the files service)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import FileNotFound, Kernel
from backplane_education.common import EducationError, not_found
from backplane_education.courses import Title
from backplane_education.models import CourseModule, CourseVersion, Lesson
from backplane_education.settings import EducationSettings

LessonKind = Literal["text", "video", "file", "quiz", "link"]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")]


class Chapter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A chapter marker of a video lesson."""

    start_s: Annotated[float, msgspec.Meta(ge=0)]
    title: Title


class ModuleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: Title


class LessonIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A lesson; which content fields it needs depends on ``kind`` (see :class:`Lesson`)."""

    kind: LessonKind
    title: Title
    body: str = ""
    file_id: uuid.UUID | None = None
    captions_file_id: uuid.UUID | None = None
    chapters: Annotated[list[Chapter], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )
    url: Url | None = None
    quiz_id: uuid.UUID | None = None
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    required: bool = True
    prerequisite_keys: Annotated[list[uuid.UUID], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )


class LessonSummary(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: uuid.UUID
    kind: str
    title: str
    required: bool
    duration_s: float | None
    prerequisite_keys: list[str]


class ModuleOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    title: str
    position: int
    lessons: list[LessonSummary]


class OutlineOut(msgspec.Struct, kw_only=True):
    course_id: uuid.UUID
    version: int
    status: str
    modules: list[ModuleOut]


class MediaOut(msgspec.Struct, kw_only=True):
    """Where the player fetches the file (a signed URL of the files service: Range requests
    work on it without ``Authorization``)."""

    url: str
    expires_at: str
    content_type: str
    size: int


class LessonOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    key: uuid.UUID
    module_id: uuid.UUID
    kind: str
    title: str
    required: bool
    duration_s: float | None
    prerequisite_keys: list[str]
    html: str | None = None
    """A text lesson's Markdown, rendered and sanitised."""
    body: str | None = None
    """The Markdown source (course editors only)."""
    media: MediaOut | None = None
    captions: MediaOut | None = None
    chapters: list[Chapter] = msgspec.field(default_factory=list)
    url: str | None = None
    quiz_id: uuid.UUID | None = None


def render_markdown(source: str) -> str:
    """CommonMark to HTML, raw HTML off, then sanitised (ammonia's allow-list) on output."""
    import nh3
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).render(source)
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


async def draft_version(db: AsyncSession, version_id: uuid.UUID) -> CourseVersion:
    version = await db.get(CourseVersion, version_id)
    if version is None:
        raise not_found("version")
    if version.status != "draft":
        raise EducationError(
            409,
            f"version {version.number} is published and immutable: make a new draft "
            "(POST /api/education/courses/{course_id}/versions)",
        )
    return version


async def find_module(db: AsyncSession, module_id: uuid.UUID) -> CourseModule:
    module = await db.get(CourseModule, module_id)
    if module is None:
        raise not_found("module")
    return module


async def find_lesson(db: AsyncSession, lesson_id: uuid.UUID) -> Lesson:
    lesson = await db.get(Lesson, lesson_id)
    if lesson is None:
        raise not_found("lesson")
    return lesson


async def _count(db: AsyncSession, table: Any, version_id: uuid.UUID) -> int:
    return int(await db.scalar(select(func.count()).where(table.version_id == version_id)) or 0)


async def add_module(
    db: AsyncSession, version: CourseVersion, data: ModuleIn, limits: EducationSettings
) -> CourseModule:
    count = await _count(db, CourseModule, version.id)
    if count >= limits.max_modules_per_version:
        raise EducationError(
            422,
            f"a version holds at most {limits.max_modules_per_version} modules "
            "(education.max_modules_per_version)",
        )
    module = CourseModule(
        course_id=version.course_id, version_id=version.id, position=count, title=data.title
    )
    db.add(module)
    await db.flush()
    return module


async def _check_file(kernel: Kernel, file_id: uuid.UUID | None, what: str, prefix: str) -> None:
    if file_id is None:
        raise EducationError(400, f"a {what} lesson needs a file_id (upload it to /api/files)")
    try:
        info = await kernel.files.get(file_id)
    except FileNotFound:
        raise EducationError(400, f"file {file_id} not found") from None
    if prefix and not info.content_type.startswith(prefix):
        raise EducationError(400, f"file {file_id} is {info.content_type}, not {prefix}*")


async def check_lesson(
    kernel: Kernel, version_id: uuid.UUID, data: LessonIn, limits: EducationSettings
) -> None:
    """What ``kind`` needs is there, files are the tenant's, prerequisites are lessons of the
    same version."""
    if len(data.body.encode()) > limits.max_markdown_bytes:
        raise EducationError(
            413,
            f"the body is larger than {limits.max_markdown_bytes} bytes "
            "(education.max_markdown_bytes)",
        )
    if data.kind == "text" and not data.body.strip():
        raise EducationError(400, "a text lesson needs a body (Markdown)")
    if data.kind == "video":
        await _check_file(kernel, data.file_id, "video", "video/")
        if data.captions_file_id is not None:
            await _check_file(kernel, data.captions_file_id, "captions", "text/")
    if data.kind == "file":
        await _check_file(kernel, data.file_id, "file", "")
    if data.kind == "quiz" and data.quiz_id is None:
        raise EducationError(400, "a quiz lesson needs a quiz_id")
    if data.kind == "link" and data.url is None:
        raise EducationError(400, "a link lesson needs a url (http or https)")
    if data.prerequisite_keys:
        keys = set(
            await kernel.db.scalars(select(Lesson.key).where(Lesson.version_id == version_id))
        )
        missing = [str(k) for k in data.prerequisite_keys if k not in keys]
        if missing:
            raise EducationError(400, f"prerequisite lessons not in this version: {missing}")


def _columns(data: LessonIn) -> dict[str, Any]:
    return {
        "kind": data.kind,
        "title": data.title,
        "body": data.body,
        "file_id": data.file_id if data.kind in ("video", "file") else None,
        "captions_file_id": data.captions_file_id if data.kind == "video" else None,
        "chapters": msgspec.to_builtins(data.chapters) if data.kind == "video" else [],
        "url": data.url if data.kind == "link" else None,
        "quiz_id": data.quiz_id if data.kind == "quiz" else None,
        "duration_s": data.duration_s,
        "required": data.required,
        "prerequisite_keys": [str(k) for k in data.prerequisite_keys],
    }


async def add_lesson(
    kernel: Kernel, module: CourseModule, data: LessonIn, limits: EducationSettings
) -> Lesson:
    db = kernel.db
    count = await _count(db, Lesson, module.version_id)
    if count >= limits.max_lessons_per_version:
        raise EducationError(
            422,
            f"a version holds at most {limits.max_lessons_per_version} lessons "
            "(education.max_lessons_per_version)",
        )
    await check_lesson(kernel, module.version_id, data, limits)
    in_module = int(await db.scalar(select(func.count()).where(Lesson.module_id == module.id)) or 0)
    lesson = Lesson(
        course_id=module.course_id,
        version_id=module.version_id,
        module_id=module.id,
        position=in_module,
        **_columns(data),
    )
    db.add(lesson)
    await db.flush()
    return lesson


async def replace_lesson(
    kernel: Kernel, lesson: Lesson, data: LessonIn, limits: EducationSettings
) -> Lesson:
    await check_lesson(kernel, lesson.version_id, data, limits)
    if lesson.key in data.prerequisite_keys:
        raise EducationError(400, "a lesson cannot require itself")
    for name, value in _columns(data).items():
        setattr(lesson, name, value)
    await kernel.db.flush()
    return lesson


async def outline(db: AsyncSession, version: CourseVersion) -> OutlineOut:
    modules = (
        await db.scalars(
            select(CourseModule)
            .where(CourseModule.version_id == version.id)
            .order_by(CourseModule.position, CourseModule.id)
        )
    ).all()
    lessons = (
        await db.scalars(
            select(Lesson)
            .where(Lesson.version_id == version.id)
            .order_by(Lesson.position, Lesson.id)
        )
    ).all()
    by_module: dict[uuid.UUID, list[LessonSummary]] = {m.id: [] for m in modules}
    for lesson in lessons:
        by_module[lesson.module_id].append(
            LessonSummary(
                id=lesson.id,
                key=lesson.key,
                kind=lesson.kind,
                title=lesson.title,
                required=lesson.required,
                duration_s=lesson.duration_s,
                prerequisite_keys=list(lesson.prerequisite_keys),
            )
        )
    return OutlineOut(
        course_id=version.course_id,
        version=version.number,
        status=version.status,
        modules=[
            ModuleOut(id=m.id, title=m.title, position=m.position, lessons=by_module[m.id])
            for m in modules
        ],
    )


async def _media(kernel: Kernel, file_id: uuid.UUID | None, ttl: int) -> MediaOut | None:
    if file_id is None:
        return None
    try:
        info = await kernel.files.get(file_id)
        signed = await kernel.files.signed_url(file_id, ttl)
    except FileNotFound:
        return None  # deleted from the files service since: the lesson shows no media
    except ValueError:  # ttl above files.signed_url_max_ttl_s: the kernel's default then
        signed = await kernel.files.signed_url(file_id)
    return MediaOut(
        url=signed.url,
        expires_at=signed.expires_at.isoformat(),
        content_type=info.content_type,
        size=info.size,
    )


async def lesson_out(
    kernel: Kernel, lesson: Lesson, limits: EducationSettings, *, editor: bool
) -> LessonOut:
    ttl = limits.signed_url_ttl_s
    return LessonOut(
        id=lesson.id,
        key=lesson.key,
        module_id=lesson.module_id,
        kind=lesson.kind,
        title=lesson.title,
        required=lesson.required,
        duration_s=lesson.duration_s,
        prerequisite_keys=list(lesson.prerequisite_keys),
        html=render_markdown(lesson.body) if lesson.body else None,
        body=lesson.body if editor else None,
        media=await _media(kernel, lesson.file_id, ttl),
        captions=await _media(kernel, lesson.captions_file_id, ttl),
        chapters=msgspec.convert(lesson.chapters, list[Chapter]),
        url=lesson.url,
        quiz_id=lesson.quiz_id,
    )
