"""Request ids, unhandled errors and the headers every response carries.

Every request has an id: the client's ``X-Request-ID`` when it is sane (1-128 of letters,
digits and ``. _ : + / = -``: safe in a log line and a header), otherwise a new random one.
It goes back on every response (``X-Request-ID``), into the body and the log record of a 500,
and onto the request's OpenTelemetry span when tracing is on; a client quoting it lets an
operator find the traceback. Every response also says ``X-Content-Type-Options: nosniff`` so
that no browser second-guesses a declared content type (a JSON error rendered as HTML).

The id is made on first use and kept in the ASGI scope, so requests that never need it before
their response starts pay for it once, in :func:`add_response_headers`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any, Final, cast

from litestar import Request, Response
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Message, Scope
from opentelemetry import trace
from opentelemetry.trace import Span

log = logging.getLogger("backplane.web")

REQUEST_ID_HEADER: Final = "X-Request-ID"
REQUEST_ID_SPAN_ATTRIBUTE: Final = "backplane.request_id"
_SCOPE_KEY: Final = "backplane.request_id"
_HEADER_NAME: Final = b"x-request-id"
_SANE_ID: Final = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")


def _incoming(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _HEADER_NAME:
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


def request_id(scope: Scope) -> str:
    """This request's id (the same on every call for one request)."""
    state = cast(dict[str, Any], scope)
    found: str | None = state.get(_SCOPE_KEY)
    if found is None:
        found = _incoming(scope["headers"]) or os.urandom(16).hex()
        state[_SCOPE_KEY] = found
    return found


async def add_response_headers(message: Message, scope: Scope) -> None:
    """``before_send``: ``X-Content-Type-Options: nosniff`` and ``X-Request-ID`` on every
    response, errors and routes Litestar answers itself (404, 405) included."""
    if message["type"] != "http.response.start":
        return
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers or ())
    headers.append(_NOSNIFF)
    headers.append((_HEADER_NAME, request_id(scope).encode("ascii")))


def internal_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The handler of every unhandled error: logged with its traceback and the request id,
    recorded on the request's span, answered with a 500 that names the id (and nothing else
    about the failure). The query string is not logged: it may carry credentials."""
    scope = request.scope
    rid = request_id(scope)
    log.error(
        "unhandled error answering %s %r (request id %s)",
        scope.get("method", "-"),
        scope["path"],
        rid,
        exc_info=exc,
        extra={"request_id": rid},
    )
    trace.get_current_span().record_exception(exc)
    return Response(
        {
            "status_code": HTTP_500_INTERNAL_SERVER_ERROR,
            "detail": "Internal Server Error",
            "request_id": rid,
        },
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


def tag_request_span(span: Span, scope: dict[str, Any]) -> None:
    """OpenTelemetry ``server_request_hook``: the request id on the request's server span."""
    span.set_attribute(REQUEST_ID_SPAN_ATTRIBUTE, request_id(cast(Scope, scope)))
