"""``/api/files``: upload (a streamed raw body), list, show, delete, download with ranges, and
signed download URLs for clients that cannot send ``Authorization``.

Every authenticated route is the caller's tenant only; another tenant's file answers 404,
like a missing one. The signed route is deliberately public: it accepts only a valid,
unexpired signature for the file in its path, and reads in the tenant the signature names.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.tenancy import bind_tenant
from backplane.files.detect import shown_inline
from backplane.files.quota import FilesQuotaExceeded
from backplane.files.ranges import Multipart, Resource, content_range, decide, validators
from backplane.files.service import FileInfo, FileNotFound, FileTooLarge, OpenedFile, SignedUrl
from backplane.files.signing import SignatureRefused, verify
from backplane.identity.auth import PUBLIC_OPT, requires
from backplane.kernel import Kernel
from backplane.settings import Settings
from backplane.state import rails_of

Req = Request[Any, Any, Any]
DOWNLOAD = [HttpMethod.GET, HttpMethod.HEAD]


class SignedUrlIn(msgspec.Struct, forbid_unknown_fields=True):
    expires_in_s: int | None = None
    """Seconds the URL works (``files.signed_url_ttl_s`` when absent; at most
    ``files.signed_url_max_ttl_s``)."""


def _detail(status: int, message: str, **extra: Any) -> Response[Any]:
    return Response({"status_code": status, "detail": message, **extra}, status_code=status)


def _not_found(_: Req, exc: FileNotFound) -> Response[Any]:
    return _detail(404, str(exc))


def _too_large(_: Req, exc: FileTooLarge) -> Response[Any]:
    return _detail(413, f"{exc} (files.max_upload_bytes); nothing was stored", limit=exc.limit)


def _quota(_: Req, exc: FilesQuotaExceeded) -> Response[Any]:
    body = {"meter": exc.meter, "limit": exc.limit, "used": exc.used, "needed": exc.needed}
    return _detail(507, f"{exc}; nothing was stored", **body)


def _signature(_: Req, exc: SignatureRefused) -> Response[Any]:
    return _detail(403, str(exc))


FILE_ERROR_HANDLERS: dict[int | type[Exception], Any] = {
    FileNotFound: _not_found,
    FileTooLarge: _too_large,
    FilesQuotaExceeded: _quota,
    SignatureRefused: _signature,
}
"""How the files service's refusals answer, wherever they are raised (plugins' handlers too)."""


def _expected_size(request: Req) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise ClientException(f"Content-Length must be a number of bytes, got {raw[:40]!r}")
    return int(raw)


def disposition(info: FileInfo) -> str:
    """``Content-Disposition`` (RFC 6266): inline for media, an attachment otherwise, with the
    name as ASCII and as UTF-8 (``filename*``)."""
    kind = "inline" if shown_inline(info.content_type) else "attachment"
    fallback = info.name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(info.name, safe='')}"


def _answer(
    request: Req, body: AsyncIterator[bytes], status: int, media_type: str, headers: dict[str, str]
) -> Response[Any]:
    """A streamed answer; to HEAD, the same headers (``Content-Length`` included) and no body:
    the store is not read."""
    # As a header: Litestar would replace the response's media type with the handler's.
    headers["content-type"] = media_type
    return Stream(
        () if request.method == HttpMethod.HEAD else body, status_code=status, headers=headers
    )


def download(request: Req, opened: OpenedFile, max_ranges: int) -> Response[Any]:
    """The RFC 9110 answer to a GET or HEAD of ``opened`` (see :mod:`backplane.files.ranges`),
    its body streamed from the store."""
    info = opened.info
    resource = Resource(info.size, info.sha256, info.created_at, info.content_type)
    decision = decide(request.headers, resource, max_ranges)
    headers = validators(resource)
    if decision.outcome == "not_modified":
        return Response(b"", status_code=304, headers=headers)
    if decision.outcome == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{info.size}"
        message = f"no requested range is within the file's {info.size} bytes"
        return Response({"status_code": 416, "detail": message}, status_code=416, headers=headers)
    headers["Content-Disposition"] = disposition(info)
    headers["Content-Security-Policy"] = "sandbox"
    if decision.outcome == "whole":
        headers["Content-Length"] = str(info.size)
        return _answer(request, opened.read(0, None), 200, info.content_type, headers)
    if len(decision.ranges) == 1:
        start, end = decision.ranges[0]
        headers["Content-Range"] = content_range(start, end, info.size)
        headers["Content-Length"] = str(end - start)
        return _answer(request, opened.read(start, end), 206, info.content_type, headers)
    multipart = Multipart(resource, decision.ranges)
    headers["Content-Length"] = str(multipart.length)
    return _answer(request, multipart.body(opened.read), 206, multipart.content_type, headers)


class FilesController(Controller):
    path = "/files"
    tags = ["files"]

    @post(
        "/",
        guards=[requires("files.write")],
        request_max_body_size=None,  # files.max_upload_bytes, checked while the body streams
        summary="Upload a file (the raw request body; ?name= its name)",
        description=(
            "The body is the file's bytes, streamed to storage as they arrive (never whole in "
            "memory). Its type is detected from the bytes (the request's Content-Type is not "
            "believed). Past `files.max_upload_bytes` 413, past the tenant's `files.bytes` "
            "hard limit 507; either way nothing is kept."
        ),
        status_code=201,
    )
    async def upload(
        self,
        request: Req,
        kernel: NamedDependency[Kernel],
        name: Annotated[str | None, QueryParameter(name="name", max_length=1000)] = None,
    ) -> FileInfo:
        return await kernel.files.save(
            request.stream(), name=name, expected_size=_expected_size(request)
        )

    @get(
        "/",
        guards=[requires("files.read")],
        summary="The tenant's files, newest first (?after=<the last id of a page> pages on)",
    )
    async def list_files(
        self,
        kernel: NamedDependency[Kernel],
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
        after: Annotated[uuid.UUID | None, QueryParameter(name="after")] = None,
    ) -> list[FileInfo]:
        return await kernel.files.list(limit=limit, after=after)

    @get("/{file_id:uuid}", guards=[requires("files.read")], summary="One file's metadata")
    async def show(self, kernel: NamedDependency[Kernel], file_id: FromPath[uuid.UUID]) -> FileInfo:
        return await kernel.files.get(file_id)

    @route(
        "/{file_id:uuid}",
        http_method=[HttpMethod.DELETE],
        guards=[requires("files.write")],
        status_code=204,
        summary="Delete a file (its bytes leave the quota at once)",
    )
    async def remove(self, kernel: NamedDependency[Kernel], file_id: FromPath[uuid.UUID]) -> None:
        await kernel.files.delete(file_id)

    @route(
        "/{file_id:uuid}/content",
        http_method=DOWNLOAD,
        guards=[requires("files.read")],
        summary="Download a file (Range, If-Range, conditional requests, HEAD)",
    )
    async def content(
        self,
        request: Req,
        kernel: NamedDependency[Kernel],
        settings: NamedDependency[Settings],
        file_id: FromPath[uuid.UUID],
    ) -> Any:
        return download(request, await kernel.files.open(file_id), settings.files.max_ranges)

    @post(
        "/{file_id:uuid}/signed-url",
        guards=[requires("files.read")],
        status_code=201,
        summary="A short-lived URL that downloads the file without Authorization",
    )
    async def sign(
        self,
        kernel: NamedDependency[Kernel],
        file_id: FromPath[uuid.UUID],
        data: JSONBody[SignedUrlIn | None] = None,
    ) -> SignedUrl:
        try:
            return await kernel.files.signed_url(file_id, data.expires_in_s if data else None)
        except ValueError as exc:
            raise ClientException(str(exc)) from None

    @route(
        "/{file_id:uuid}/signed",
        http_method=DOWNLOAD,
        opt={PUBLIC_OPT: True},
        summary="Download through a signed URL (public: the signature is the credential)",
    )
    async def signed(
        self,
        request: Req,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        file_id: FromPath[uuid.UUID],
        sig: FromQuery[str] = "",
    ) -> Any:
        rails = rails_of(request)
        claims = await verify(await rails.identity.get(), sig, file_id)
        bind_tenant(db, claims.tid)
        files = Kernel(rails, db=db, tenant_id=claims.tid).files
        return download(request, await files.open(file_id), settings.files.max_ranges)
