"""What both controllers share: the error answers and the caller's user id."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, Response

from backplane import Principal
from backplane_documents.errors import RenderError
from backplane_documents.templates import TemplateRequestError

TAGS = ["documents"]
INERT_CONTENT = {
    # A template's HTML is its author's: served from the API's origin, it must not run scripts
    # or load anything (a stored cross-site script against the tenant's other users otherwise).
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:",
}
"""Headers of every rendered document the API serves (previews, downloads); the kernel adds
``X-Content-Type-Options: nosniff`` to every response."""
RENDER_STATUS = {"fields": 400, "template": 422, "limit": 422}


def _detail(status: int, message: str, **extra: Any) -> Response[Any]:
    return Response({"status_code": status, "detail": message, **extra}, status_code=status)


def render_failed(_: Request[Any, Any, Any], error: RenderError) -> Response[Any]:
    """Bad fields are the caller's data (400); a failing template or a limit hit, the
    template's (422). Nothing was stored or metered."""
    return _detail(RENDER_STATUS.get(error.kind, 422), str(error), kind=error.kind)


def template_problem(_: Request[Any, Any, Any], error: TemplateRequestError) -> Response[Any]:
    return _detail(error.status, str(error))


ERROR_HANDLERS: dict[int | type[Exception], Any] = {
    RenderError: render_failed,
    TemplateRequestError: template_problem,
}


def user_of(request: Request[Any, Any, Any]) -> uuid.UUID | None:
    """The calling user's id (None for a tenant API key that acts for no user)."""
    principal = request.user
    return principal.user_id if isinstance(principal, Principal) else None
