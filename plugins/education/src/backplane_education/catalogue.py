"""The course catalogue: published courses (and, for their teachers, drafts), filtered by tag
and difficulty, searched by words. On PostgreSQL the search is full-text (``to_tsvector`` /
``plainto_tsquery``, ranked); on SQLite every word must appear in the title or summary."""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_, select

from backplane import Kernel
from backplane_education.common import caller_id, can_manage
from backplane_education.courses import CourseOut, course_out
from backplane_education.models import Course, Instructor
from backplane_education.settings import EducationSettings

Difficulty = Literal["beginner", "intermediate", "advanced"]


def _document() -> object:
    return func.to_tsvector(
        "simple", func.coalesce(Course.title, "") + " " + func.coalesce(Course.summary, "")
    )


async def catalogue(
    kernel: Kernel,
    q: str | None,
    tag: str | None,
    difficulty: Difficulty | None,
    drafts: bool,
    offset: int,
    limits: EducationSettings,
) -> list[CourseOut]:
    db = kernel.db
    query = select(Course)
    visible: ColumnElement[bool] = Course.published_version.is_not(None)
    if drafts and can_manage(kernel):
        visible = Course.id.is_not(None)
    elif drafts and caller_id(kernel) is not None:
        taught = select(Instructor.course_id).where(Instructor.user_id == caller_id(kernel))
        visible = or_(visible, Course.id.in_(taught))
    query = query.where(visible)
    if difficulty is not None:
        query = query.where(Course.difficulty == difficulty)
    order: list[object] = []
    words = re.findall(r"\w+", q or "")
    if words:
        if db.get_bind().dialect.name == "postgresql":
            tsquery = func.plainto_tsquery("simple", " ".join(words))
            document = _document()
            query = query.where(document.op("@@")(tsquery))  # type: ignore[attr-defined]
            order.append(func.ts_rank(document, tsquery).desc())
        else:
            query = query.where(
                and_(
                    *(
                        or_(Course.title.ilike(f"%{w}%"), Course.summary.ilike(f"%{w}%"))
                        for w in words
                    )
                )
            )
    query = query.order_by(*order, Course.title, Course.id)  # type: ignore[arg-type]
    courses = list((await db.scalars(query)).all())
    if tag is not None:
        wanted = tag.lower()
        courses = [c for c in courses if wanted in (t.lower() for t in c.tags)]
    page = courses[offset : offset + limits.catalogue_page_size]
    return [course_out(c) for c in page]
