"""The HTTP layer every route shares: input screening, request ids, error logging, headers.

:func:`harden` wires it into the application's :class:`~litestar.config.app.AppConfig` with
Litestar's own extension points (the request class, a middleware, a 500 exception handler and
a ``before_send`` hook); :func:`tag_request_span` is the OpenTelemetry plugin's request hook.
"""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from backplane.web._diagnostics import (
    add_response_headers,
    internal_error_response,
    request_id,
    tag_request_span,
)
from backplane.web._scan import contains_nul_escape, is_json_media_type, json_nesting_exceeds
from backplane.web._screening import (
    ScreenedRequest,
    content_type_message,
    nesting_message,
    refuse_nul_in_fields,
    refuse_nul_in_url,
)
from backplane.web._secret_responses import NO_CACHE, NO_STORE

__all__ = [
    "NO_CACHE",
    "NO_STORE",
    "contains_nul_escape",
    "content_type_message",
    "harden",
    "is_json_media_type",
    "json_nesting_exceeds",
    "nesting_message",
    "refuse_nul_in_fields",
    "request_id",
    "tag_request_span",
]


def harden(config: AppConfig) -> None:
    """Screen every request and label every response of the app ``config`` builds.

    The JSON depth limit is read per request from the application's settings (``server``).
    Exception handlers already in ``config`` keep precedence for the exceptions they name;
    the 500 handler takes what nothing else handles.
    """
    config.request_class = ScreenedRequest
    config.middleware.insert(0, refuse_nul_in_url)
    config.exception_handlers.setdefault(HTTP_500_INTERNAL_SERVER_ERROR, internal_error_response)
    config.before_send.append(add_response_headers)
