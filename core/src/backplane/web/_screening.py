"""Refuse request text no handler should see: NUL characters, over-deep JSON, non-JSON bodies.

Once for every route, kernel and plugins alike. JSON bodies are screened where Litestar decodes
them (:meth:`ScreenedRequest.json`, what ``data: JSONBody[...]`` handlers get); paths and query
strings by a middleware before authentication. Bodies that are not text meant to become
strings are left alone: multipart uploads (Litestar parses them without ``json()`` or ``form()``;
a route checks its text fields with :func:`refuse_nul_in_fields`), ``application/octet-stream``
model files and the V2 binary tensor extension never go through ``json()`` (the V2 route checks
its JSON header itself, see :mod:`backplane.inference.routes`).

PostgreSQL cannot store a NUL in a text or JSON column and answered 500 to one; SQLite stored it.
Refusing it here answers 400 on both, whatever the route.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection.base import AuthT, StateT, UserT
from litestar.exceptions import ClientException, HTTPException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types import ASGIApp, Receive, Scope, Send

from backplane.state import rails_of
from backplane.web._scan import contains_nul_escape, is_json_media_type, json_nesting_exceeds

_SHOWN_CONTENT_TYPE = 100
"""How much of a refused ``Content-Type`` the error message repeats."""


class UnsupportedMediaTypeError(HTTPException):
    """415: the body is not in a media type the route reads."""

    status_code = HTTP_415_UNSUPPORTED_MEDIA_TYPE


def nesting_message(limit: int) -> str:
    """The message of a body refused by ``server.max_json_depth``."""
    return f"the JSON body is nested deeper than {limit} levels (server.max_json_depth)"


def content_type_message(content_type: str | None, accepted: str) -> str:
    """The message of a body refused for its ``Content-Type``."""
    got = "no Content-Type" if content_type is None else repr(content_type[:_SHOWN_CONTENT_TYPE])
    return f"the body must be sent as {accepted}, got {got}"


def check_json_body(content_type: str | None, body: bytes, max_depth: int) -> None:
    """Raise the 4xx a JSON route answers to ``body`` before it is decoded, if any.

    415 unless ``content_type`` is JSON; 400 when the JSON nests deeper than ``max_depth`` or
    holds a NUL character (in a key or a value).
    """
    if not is_json_media_type(content_type):
        raise UnsupportedMediaTypeError(
            detail=content_type_message(
                content_type, "JSON (Content-Type application/json or application/*+json)"
            )
        )
    if json_nesting_exceeds(body, max_depth):
        raise ClientException(nesting_message(max_depth))
    if contains_nul_escape(body):
        raise ClientException(
            "the JSON body contains a NUL character (\\u0000), which no field accepts"
        )


class ScreenedRequest(Request[UserT, AuthT, StateT]):
    """The application's request class: :meth:`json` screens the body before decoding it."""

    __slots__ = ()

    async def json(self) -> Any:
        """The decoded JSON body, after :func:`check_json_body` (an empty body is not JSON and
        is not screened: Litestar reads it as ``null``, and ``data`` handlers as missing)."""
        body = await self.body()
        if body:
            depth: int = rails_of(self).settings.server.max_json_depth
            check_json_body(self.headers.get("content-type"), body, depth)
        return await super().json()


def refuse_nul_in_fields(**fields: str | None) -> None:
    """400 when a text field of a multipart form holds a NUL (its file parts are data)."""
    for name, value in fields.items():
        if value is not None and "\x00" in value:
            raise ClientException(f"form field {name!r} contains a NUL character")


def refuse_nul_in_url(app: ASGIApp) -> ASGIApp:
    """Middleware: 400 for a path or a query string that decodes to a NUL character.

    Path parameters and query values reach queries as text; PostgreSQL refuses a NUL in them.
    """

    async def screened(scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            raise ClientException("NUL characters (%00) are not accepted in URLs")
        await app(scope, receive, send)

    return screened
