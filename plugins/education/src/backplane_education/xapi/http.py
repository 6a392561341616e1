"""What every LRS response shares: the ``X-Experience-API-Version`` header, the request version
check, error answers with the specification's statuses, and the caller's scope.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from backplane import Principal
from backplane_education.xapi.settings import XapiSettings
from backplane_education.xapi.validation import XapiError

VERSION = "1.0.3"
SUPPORTED = ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
"""What ``/xapi/about`` announces. Requests and statements of version 2.0 are accepted where
2.0 extends 1.0.3 compatibly (``contextAgents``, ``contextGroups``), but 2.0 is not announced:
1.0 clients (TinCanPython among them) refuse an About listing a version they do not know."""
VERSION_HEADER = "X-Experience-API-Version"
HEADERS = {VERSION_HEADER: VERSION}
_REQUEST_VERSION = re.compile(r"^(?:1\.0(?:\.\d+)?|2\.0(?:\.\d+)?)$")


def answer(
    content: Any = None,
    *,
    status: int = 200,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """A response with the xAPI version header (``content`` bytes are sent as they are)."""
    return Response(
        content, status_code=status, media_type=media_type, headers={**HEADERS, **(headers or {})}
    )


def xapi_error(_: Request[Any, Any, Any], error: XapiError) -> Response[Any]:
    return answer({"error": error.message}, status=error.status)


def http_error(_: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    """Litestar's and the kernel's refusals (401, 403, 404, 405, 413, 429) with the header."""
    return answer(
        {"error": error.detail}, status=error.status_code, headers=dict(error.headers or {})
    )


ERROR_HANDLERS: dict[int | type[Exception], Any] = {
    XapiError: xapi_error,
    HTTPException: http_error,
}


def check_version(request: Request[Any, Any, Any]) -> None:
    """400 unless the request names a supported xAPI version (every resource but About)."""
    version = request.headers.get(VERSION_HEADER)
    if version is None:
        raise XapiError(400, f"the {VERSION_HEADER} header is required")
    if not _REQUEST_VERSION.match(version.strip()):
        raise XapiError(400, f"{VERSION_HEADER} {version!r} is not supported ({SUPPORTED})")


def check_scope(request: Request[Any, Any, Any], action: str) -> Principal:
    """The caller, when its LRS credential allows ``action`` (``read`` or ``write``); 403
    otherwise. The credential's scope travels in the principal's subject (see :mod:`.auth`)."""
    principal = request.user
    if not isinstance(principal, Principal) or not principal.token_id.startswith("xapi:"):
        raise XapiError(401, "xAPI resources take LRS credentials (HTTP Basic)")
    scope = principal.token_id.split(":")[1]
    if scope not in ("all", action):
        raise XapiError(403, f"this LRS credential may not {action} (its scope is {scope})")
    return principal


def xapi_settings(plugin_settings: Any) -> XapiSettings:
    """The LRS's settings inside the education plugin's (defaults when it has none)."""
    found = getattr(plugin_settings, "xapi", None)
    return found if isinstance(found, XapiSettings) else XapiSettings()


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request body, 413 past ``limit`` (read in chunks: nothing larger is buffered)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise XapiError(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise XapiError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
