"""``/api/education/modules`` and ``/api/education/lessons``: the content of drafts (a
published version answers 409 to every change)."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import delete as sql_delete

from backplane import Kernel, requires
from backplane_education.common import ERROR_HANDLERS, TAGS, require_teacher
from backplane_education.courses_content import (
    LessonIn,
    LessonOut,
    ModuleIn,
    ModuleOut,
    add_lesson,
    draft_version,
    find_lesson,
    find_module,
    lesson_out,
    replace_lesson,
)
from backplane_education.courses_routes import limits
from backplane_education.models import Lesson
from backplane_education.plugin import TEACH


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
