"""``/api/education/courses`` and the content of drafts (``/modules``, ``/lessons``): the
catalogue, course entries, versions, modules, lessons and instructors."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_education.catalogue import Difficulty, catalogue
from backplane_education.common import (
    ERROR_HANDLERS,
    TAGS,
    EducationError,
    caller_id,
    can_manage,
    is_instructor,
    require_teacher,
)
from backplane_education.courses import (
    CourseIn,
    CourseOut,
    CoursePatch,
    VersionOut,
    course_out,
    create_course,
    find_course,
    find_version,
    new_draft,
    patch_course,
    publish,
    version_out,
)
from backplane_education.courses_content import (
    LessonIn,
    LessonOut,
    ModuleIn,
    ModuleOut,
    OutlineOut,
    add_lesson,
    add_module,
    draft_version,
    find_lesson,
    find_module,
    lesson_out,
    outline,
    replace_lesson,
)
from backplane_education.models import CourseVersion, Enrolment, Instructor, Lesson
from backplane_education.plugin import MANAGE, READ, TEACH
from backplane_education.settings import EducationSettings


def limits(kernel: Kernel) -> EducationSettings:
    settings: EducationSettings = kernel.plugin_settings
    return settings


async def visible_course(kernel: Kernel, course_id: uuid.UUID) -> CourseOut:
    """A course as the caller may see it: drafts-only courses are their teachers' only."""
    course = await find_course(kernel.db, course_id)
    if course.published_version is None and not (
        can_manage(kernel) or await is_instructor(kernel, course_id)
    ):
        raise EducationError(404, "course not found")
    return course_out(course)


async def instructor_ids(kernel: Kernel, course_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await kernel.db.scalars(
        select(Instructor.user_id)
        .where(Instructor.course_id == course_id)
        .order_by(Instructor.added_at, Instructor.user_id)
    )
    return list(rows)


class CoursesController(Controller):
    path = "/courses"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(TEACH)], summary="Create a course (draft version 1)")
    async def create(self, data: JSONBody[CourseIn], kernel: NamedDependency[Kernel]) -> CourseOut:
        author = caller_id(kernel)
        course = await create_course(kernel.db, data, author)
        if author is not None:
            kernel.db.add(Instructor(course_id=course.id, user_id=author))
        await kernel.audit.record("education.course_created", target=("course", course.id))
        return course_out(course)

    @get("/", guards=[requires(READ)], summary="The catalogue, with full-text search")
    async def list_courses(
        self,
        kernel: NamedDependency[Kernel],
        q: Annotated[str | None, QueryParameter(max_length=200, description="Words")] = None,
        tag: Annotated[str | None, QueryParameter(max_length=50)] = None,
        difficulty: Difficulty | None = None,
        drafts: Annotated[
            bool, QueryParameter(description="Also unpublished courses one teaches")
        ] = False,
        offset: Annotated[int, QueryParameter(ge=0, le=100_000)] = 0,
    ) -> list[CourseOut]:
        return await catalogue(kernel, q, tag, difficulty, drafts, offset, limits(kernel))

    @get("/{course_id:uuid}", guards=[requires(READ)])
    async def get_course(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CourseOut:
        return await visible_course(kernel, course_id)

    @patch("/{course_id:uuid}", guards=[requires(TEACH)])
    async def patch_course(
        self,
        course_id: FromPath[uuid.UUID],
        data: JSONBody[CoursePatch],
        kernel: NamedDependency[Kernel],
    ) -> CourseOut:
        course = await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        return course_out(await patch_course(kernel.db, course, data))

    @delete("/{course_id:uuid}", guards=[requires(MANAGE)])
    async def delete_course(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete the course with its versions, enrolments and learners' progress."""
        course = await find_course(kernel.db, course_id)
        await kernel.db.execute(sql_delete(Enrolment).where(Enrolment.course_id == course_id))
        await kernel.db.delete(course)
        await kernel.audit.record(
            "education.course_deleted",
            target=("course", course_id),
            details={"title": course.title},
        )

    @get("/{course_id:uuid}/outline", guards=[requires(READ)])
    async def get_outline(
        self,
        course_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> OutlineOut:
        """A version's modules and lessons: teachers any version; a learner the version they
        are enrolled in, else the published one."""
        course = await find_course(kernel.db, course_id)
        teacher = can_manage(kernel) or await is_instructor(kernel, course_id)
        if version is None or not teacher:
            user = caller_id(kernel)
            enrolled = None
            if user is not None:
                enrolled = await kernel.db.scalar(
                    select(Enrolment.version_number).where(
                        Enrolment.course_id == course_id, Enrolment.user_id == user
                    )
                )
            fallback = course.latest_version if teacher else course.published_version
            version = enrolled or fallback
        if version is None:
            raise EducationError(404, "course not found")
        return await outline(kernel.db, await find_version(kernel.db, course_id, version))

    @get("/{course_id:uuid}/versions", guards=[requires(TEACH)])
    async def list_versions(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[VersionOut]:
        await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        rows = await kernel.db.scalars(
            select(CourseVersion)
            .where(CourseVersion.course_id == course_id)
            .order_by(CourseVersion.number)
        )
        return [version_out(v) for v in rows]

    @post("/{course_id:uuid}/versions", guards=[requires(TEACH)], summary="A new draft")
    async def create_version(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> VersionOut:
        course = await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        return version_out(await new_draft(kernel.db, course, caller_id(kernel)))

    @post("/{course_id:uuid}/versions/{number:int}/publish", guards=[requires(TEACH)])
    async def publish_version(
        self, course_id: FromPath[uuid.UUID], number: FromPath[int], kernel: NamedDependency[Kernel]
    ) -> VersionOut:
        course = await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        version = await publish(kernel.db, course, number)
        await kernel.audit.record(
            "education.course_published", target=("course", course_id), details={"version": number}
        )
        return version_out(version)

    @post("/{course_id:uuid}/versions/{number:int}/modules", guards=[requires(TEACH)])
    async def create_module(
        self,
        course_id: FromPath[uuid.UUID],
        number: FromPath[int],
        data: JSONBody[ModuleIn],
        kernel: NamedDependency[Kernel],
    ) -> ModuleOut:
        await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        version = await draft_version(
            kernel.db, (await find_version(kernel.db, course_id, number)).id
        )
        module = await add_module(kernel.db, version, data, limits(kernel))
        return ModuleOut(id=module.id, title=module.title, position=module.position, lessons=[])

    @get("/{course_id:uuid}/instructors", guards=[requires(READ)])
    async def list_instructors(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[uuid.UUID]:
        await visible_course(kernel, course_id)
        return await instructor_ids(kernel, course_id)

    @put("/{course_id:uuid}/instructors/{user_id:uuid}", guards=[requires(MANAGE)])
    async def add_instructor(
        self,
        course_id: FromPath[uuid.UUID],
        user_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
    ) -> list[uuid.UUID]:
        await find_course(kernel.db, course_id)
        found = await kernel.db.scalar(
            select(Instructor.id).where(
                Instructor.course_id == course_id, Instructor.user_id == user_id
            )
        )
        if found is None:
            kernel.db.add(Instructor(course_id=course_id, user_id=user_id))
            await kernel.db.flush()
            await kernel.audit.record(
                "education.instructor_added",
                target=("course", course_id),
                details={"user_id": str(user_id)},
            )
        return await instructor_ids(kernel, course_id)

    @delete("/{course_id:uuid}/instructors/{user_id:uuid}", guards=[requires(MANAGE)])
    async def remove_instructor(
        self,
        course_id: FromPath[uuid.UUID],
        user_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
    ) -> None:
        await find_course(kernel.db, course_id)
        removed = await kernel.db.execute(
            sql_delete(Instructor).where(
                Instructor.course_id == course_id, Instructor.user_id == user_id
            )
        )
        if not getattr(removed, "rowcount", 0):
            raise EducationError(404, "instructor not found")
        await kernel.audit.record(
            "education.instructor_removed",
            target=("course", course_id),
            details={"user_id": str(user_id)},
        )


class ContentController(Controller):
    """Modules and lessons of drafts (a published version answers 409)."""

    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @patch("/modules/{module_id:uuid}", guards=[requires(TEACH)])
    async def rename_module(
        self,
        module_id: FromPath[uuid.UUID],
        data: JSONBody[ModuleIn],
        kernel: NamedDependency[Kernel],
    ) -> ModuleOut:
        module = await find_module(kernel.db, module_id)
        await require_teacher(kernel, module.course_id)
        await draft_version(kernel.db, module.version_id)
        module.title = data.title
        return ModuleOut(id=module.id, title=module.title, position=module.position, lessons=[])

    @delete("/modules/{module_id:uuid}", guards=[requires(TEACH)])
    async def delete_module(
        self, module_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        module = await find_module(kernel.db, module_id)
        await require_teacher(kernel, module.course_id)
        await draft_version(kernel.db, module.version_id)
        await kernel.db.execute(sql_delete(Lesson).where(Lesson.module_id == module_id))
        await kernel.db.delete(module)

    @post("/modules/{module_id:uuid}/lessons", guards=[requires(TEACH)])
    async def create_lesson(
        self,
        module_id: FromPath[uuid.UUID],
        data: JSONBody[LessonIn],
        kernel: NamedDependency[Kernel],
    ) -> LessonOut:
        module = await find_module(kernel.db, module_id)
        await require_teacher(kernel, module.course_id)
        await draft_version(kernel.db, module.version_id)
        lesson = await add_lesson(kernel, module, data, limits(kernel))
        return await lesson_out(kernel, lesson, limits(kernel), editor=True)

    @put("/lessons/{lesson_id:uuid}", guards=[requires(TEACH)])
    async def replace_lesson(
        self,
        lesson_id: FromPath[uuid.UUID],
        data: JSONBody[LessonIn],
        kernel: NamedDependency[Kernel],
    ) -> LessonOut:
        lesson = await find_lesson(kernel.db, lesson_id)
        await require_teacher(kernel, lesson.course_id)
        await draft_version(kernel.db, lesson.version_id)
        lesson = await replace_lesson(kernel, lesson, data, limits(kernel))
        return await lesson_out(kernel, lesson, limits(kernel), editor=True)

    @delete("/lessons/{lesson_id:uuid}", guards=[requires(TEACH)])
    async def delete_lesson(
        self, lesson_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        lesson = await find_lesson(kernel.db, lesson_id)
        await require_teacher(kernel, lesson.course_id)
        await draft_version(kernel.db, lesson.version_id)
        await kernel.db.delete(lesson)
