"""Demo courses seeded by ``backplane demo seed``: a two-course track (the second requires the
first) of text and link lessons, published, and a draft, so that ``make run`` shows the
catalogue, enrolment and progress at once."""

from __future__ import annotations

from typing import Any

from backplane_education.courses import CourseIn, create_course, publish
from backplane_education.courses_content import LessonIn, ModuleIn, add_lesson, add_module
from backplane_education.models import CourseVersion

TRACK: list[dict[str, Any]] = [
    {
        "course": CourseIn(
            title="Backplane basics",
            summary="Tenants, plugins and the kernel's rails, in twenty minutes",
            tags=["backplane", "platform"],
            difficulty="beginner",
        ),
        "modules": {
            "The kernel": [
                ("text", "What the kernel owns", "Identity, **tenancy**, billing, models."),
                ("text", "Plugins are cards", "Plugins slot into the kernel's *rails*."),
            ],
            "Further reading": [("link", "The architecture", "https://example.org/backplane")],
        },
    },
    {
        "course": CourseIn(
            title="Writing a plugin",
            summary="Routes, tables with row-level security, meters and permissions",
            tags=["backplane", "python"],
            difficulty="intermediate",
        ),
        "modules": {
            "First steps": [
                ("text", "Hooks", "A plugin implements `register_*` hooks."),
                ("text", "Tables", "Tenant-scoped tables get **row-level security**."),
            ],
        },
    },
]


async def _build(kernel: Any, spec: dict[str, Any], requires: list[Any]) -> Any:
    course_in = spec["course"]
    if requires:
        course_in = CourseIn(**{**_fields(course_in), "prerequisite_ids": requires})
    course = await create_course(kernel.db, course_in, None)
    version = await kernel.db.get(CourseVersion, await _version_id(kernel, course.id))
    for title, lessons in spec["modules"].items():
        module = await add_module(kernel.db, version, ModuleIn(title=title), kernel.plugin_settings)
        for kind, lesson_title, content in lessons:
            extra = {"url": content} if kind == "link" else {"body": content}
            lesson = LessonIn(kind=kind, title=lesson_title, **extra)
            await add_lesson(kernel, module, lesson, kernel.plugin_settings)
    await publish(kernel.db, course, 1)
    return course


def _fields(course_in: CourseIn) -> dict[str, Any]:
    return {f: getattr(course_in, f) for f in course_in.__struct_fields__}


async def _version_id(kernel: Any, course_id: Any) -> Any:
    from sqlalchemy import select

    return await kernel.db.scalar(
        select(CourseVersion.id).where(
            CourseVersion.course_id == course_id, CourseVersion.number == 1
        )
    )


async def seed(kernel: Any) -> dict[str, str]:
    """The demo tenant's courses (``seed_demo_data``)."""
    first = await _build(kernel, TRACK[0], [])
    await _build(kernel, TRACK[1], [first.id])
    await create_course(
        kernel.db, CourseIn(title="Model marketplace (draft)", summary="Coming soon"), None
    )
    return {"courses": "GET /api/education/courses, then POST /api/education/courses/{id}/enrol"}
