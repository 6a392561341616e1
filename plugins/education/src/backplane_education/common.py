"""What every controller shares: the one error type of the plugin and its HTTP answer, the
caller's user id, and who may edit or watch a course."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response
from sqlalchemy import select

from backplane import Kernel
from backplane_education.models import Instructor

TAGS = ["education"]


class EducationError(Exception):
    """A request the plugin refuses, with the status and the message the caller gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def not_found(what: str) -> EducationError:
    """Missing and another tenant's answer alike."""
    return EducationError(404, f"{what} not found")


def refused(_: Request[Any, Any, Any], error: EducationError) -> Response[Any]:
    return Response({"status_code": error.status, "detail": str(error)}, status_code=error.status)


ERROR_HANDLERS: dict[int | type[Exception], Any] = {EducationError: refused}


def caller_id(kernel: Kernel) -> uuid.UUID | None:
    """The calling user's id (None for a tenant API key that acts for no user)."""
    principal = kernel.principal
    return principal.user_id if principal is not None else None


def learner_id(kernel: Kernel) -> uuid.UUID:
    """The calling user, who is the learner: learning needs a person, not a tenant's key."""
    user = caller_id(kernel)
    if user is None:
        raise EducationError(403, "learning needs a signed-in user (an API key acts for no one)")
    return user


def can_manage(kernel: Kernel) -> bool:
    from backplane_education.plugin import MANAGE

    return kernel.principal is not None and kernel.principal.has(MANAGE)


async def is_instructor(kernel: Kernel, course_id: uuid.UUID) -> bool:
    user = caller_id(kernel)
    if user is None:
        return False
    found = await kernel.db.scalar(
        select(Instructor.id).where(Instructor.course_id == course_id, Instructor.user_id == user)
    )
    return found is not None


async def require_teacher(kernel: Kernel, course_id: uuid.UUID) -> None:
    """Managers, and the course's instructors (who also hold ``education.teach``)."""
    from backplane_education.plugin import TEACH

    if can_manage(kernel):
        return
    teaches = kernel.principal is not None and kernel.principal.has(TEACH)
    if teaches and await is_instructor(kernel, course_id):
        return
    raise EducationError(403, "only the course's instructors and education managers may do this")
