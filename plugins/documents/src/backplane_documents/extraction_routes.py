"""``/api/documents/extractions`` and ``/api/documents/extraction-jobs``: text and fields out of
uploaded or stored documents, one at a time (synchronous) or in bulk (a background job).

An upload is stored through the kernel's files service first: it is counted against the
tenant's storage, typed from its bytes (never the client's Content-Type), and the extraction
names it by ``file_id``. Every route sees the caller's tenant only: another tenant's
extraction, job, file or template answers 404 like a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_documents.plugin import READ, WRITE
from backplane_documents.processing.classify import ClassifierSpec
from backplane_documents.processing.jobs import JobIn, JobOut, create_job, job_out
from backplane_documents.processing.limits import ExtractionError
from backplane_documents.processing.models import DocumentExtraction, ExtractionJob
from backplane_documents.processing.service import (
    ExtractionNotFound,
    ExtractionOut,
    Target,
    extract_stored,
    extraction_out,
    find_extraction,
    find_target,
    pages_of,
)
from backplane_documents.routes_common import ERROR_HANDLERS, TAGS, user_of

Req = Request[Any, Any, Any]
_FORM_OVERHEAD = 1 << 20
"""Room for a multipart form's boundaries and small fields beyond the file itself."""
_MAX_JSON_BYTES = 1 << 20
"""A JSON request names a stored file: its rules are all it carries."""


class ExtractionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Extract a stored file (the kernel's files service); with a template, fill its fields."""

    file_id: uuid.UUID
    template_id: uuid.UUID | None = None
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """The template version whose schema is filled (its current one by default)."""
    rules: dict[str, Any] | None = None
    """Field name -> rule (``{"kind": "regex" | "anchor" | "table", ...}``)."""
    ocr: bool = True
    """False: pages without a text layer come back empty instead of being read by OCR."""
    classify: ClassifierSpec | None = None
    """A tenant model that classifies the document (its type, say) from the text."""


class LabelIn(msgspec.Struct, forbid_unknown_fields=True):
    """The class of an extraction's document, as a user sees it; null removes it."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"\S")] | None


def _detail(status: int, message: str) -> Response[Any]:
    return Response({"status_code": status, "detail": message}, status_code=status)


def _refused(_: Req, error: ExtractionError) -> Response[Any]:
    return _detail(error.status_code, f"{error}; nothing was stored or metered")


def _not_found(_: Req, error: ExtractionNotFound) -> Response[Any]:
    return _detail(404, str(error))


HANDLERS: dict[int | type[Exception], Any] = {
    **ERROR_HANDLERS,
    ExtractionError: _refused,
    ExtractionNotFound: _not_found,
}


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _from_form(request: Req, kernel: Kernel, limits: Any) -> tuple[ExtractionIn, Any]:
    """The upload of a multipart form (``file``; ``template_id``, ``version``, ``rules`` as
    JSON text, ``ocr``), stored through the files service."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(status_code=411, detail="an upload needs a Content-Length")
    if int(length) > limits.max_bytes + _FORM_OVERHEAD:
        raise ExtractionError(
            f"the upload has {length} bytes; documents.processing.max_bytes is {limits.max_bytes}",
            status_code=413,
        )
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ClientException("the form needs a `file` part holding the document")
    fields: dict[str, Any] = {}
    for key in ("template_id", "version", "rules", "ocr", "classify"):
        value = form.get(key)
        if isinstance(value, str) and value.strip():
            fields[key] = value
    try:
        for key in ("rules", "classify"):
            if key in fields:
                fields[key] = msgspec.json.decode(fields[key])
        if "ocr" in fields:
            fields["ocr"] = fields["ocr"].strip().lower() in ("1", "true", "yes", "on")
        fields["file_id"] = uuid.UUID(int=0)
        parsed = msgspec.convert(fields, ExtractionIn, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ClientException(f"invalid form: {exc}") from None
    content = await upload.read()
    info = await kernel.files.save(_one(content), name=upload.filename, max_bytes=limits.max_bytes)
    return msgspec.structs.replace(parsed, file_id=info.id), (info, content)


class ExtractionsController(Controller):
    path = "/extractions"
    tags = TAGS
    exception_handlers = HANDLERS

    @post(
        "/",
        guards=[requires(WRITE)],
        status_code=201,
        request_max_body_size=None,  # checked against documents.processing.max_bytes
        summary="Extract text (and a template's fields) from an upload or a stored file",
        description=(
            "Either JSON (`file_id` of a stored file) or a multipart form with a `file` part "
            "(stored through the files service first). Optional: `template_id`, `version`, "
            "`rules` (field name -> regex, anchor or table rule), `ocr`, `classify` (a tenant "
            "model: `{model, version?}`, fed the text's hashed bag of words). Answers the text per "
            "page (method text-layer, ocr or docx), the fields and an error per field not "
            "found. Metered per page (documents.pages_processed: a spent quota answers 429); "
            "limits (documents.processing.*) answer 413 or 422, an unsupported type 415."
        ),
    )
    async def create(self, request: Req, kernel: NamedDependency[Kernel]) -> ExtractionOut:
        limits = kernel.plugin_settings.processing
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            data, (info, content) = await _from_form(request, kernel, limits)
        else:
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > _MAX_JSON_BYTES:
                raise HTTPException(
                    status_code=413 if length.isdigit() else 411,
                    detail=f"a JSON request needs a Content-Length of at most {_MAX_JSON_BYTES} "
                    "bytes (upload documents as multipart/form-data)",
                )
            try:
                data = msgspec.json.decode(await request.body(), type=ExtractionIn)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ClientException(f"invalid request: {exc}") from None
            from backplane_documents.processing.jobs import read_file

            info, content = await read_file(kernel, data.file_id, limits)
        target = await _target(kernel, data)
        row, pages = await extract_stored(
            kernel,
            info.id,
            content,
            name=info.name,
            media_type=info.content_type,
            limits=limits,
            target=target,
            ocr=data.ocr,
            user_id=user_of(request),
            classifier=data.classify,
        )
        return extraction_out(row, pages)

    @get("/", guards=[requires(READ)], summary="The tenant's extractions, newest first")
    async def list_extractions(
        self,
        kernel: NamedDependency[Kernel],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        job_id: Annotated[uuid.UUID | None, QueryParameter(description="One job's")] = None,
    ) -> list[ExtractionOut]:
        query = select(DocumentExtraction)
        if job_id is not None:
            query = query.where(DocumentExtraction.job_id == job_id)
        query = query.order_by(DocumentExtraction.created_at.desc(), DocumentExtraction.id)
        rows = await kernel.db.scalars(query.limit(limit))
        return [extraction_out(row, None) for row in rows]

    @get("/{extraction_id:uuid}", guards=[requires(READ)], summary="One extraction, with text")
    async def show(
        self, kernel: NamedDependency[Kernel], extraction_id: FromPath[uuid.UUID]
    ) -> ExtractionOut:
        row = await find_extraction(kernel.db, extraction_id)
        return extraction_out(row, await pages_of(kernel.db, row.id))

    @put(
        "/{extraction_id:uuid}/label",
        guards=[requires(WRITE)],
        summary="Set (or, with null, remove) the class of an extraction's document",
        description=(
            "Labelled extractions are what the documents trainer learns from "
            "(`POST /api/models/document_type/train`)."
        ),
    )
    async def set_label(
        self, kernel: NamedDependency[Kernel], extraction_id: FromPath[uuid.UUID],
        data: JSONBody[LabelIn],
    ) -> ExtractionOut:  # fmt: skip
        row = await find_extraction(kernel.db, extraction_id)
        row.label = data.label.strip() if data.label is not None else None
        await kernel.db.flush()
        return extraction_out(row, None)


async def _target(kernel: Kernel, data: Any) -> Target | None:
    try:
        return await find_target(kernel.db, data.template_id, data.version, data.rules)
    except ValueError as exc:
        if type(exc) is not ValueError:  # TemplateRequestError: its own handler (404)
            raise
        raise ClientException(str(exc)) from None


class ExtractionJobsController(Controller):
    path = "/extraction-jobs"
    tags = TAGS
    exception_handlers = HANDLERS

    @post(
        "/",
        guards=[requires(WRITE)],
        status_code=202,
        summary="Extract many stored files in the background (progress on GET)",
        description=(
            "Cut into chunks of documents.processing_chunk_pages pages, each a task: a worker "
            "killed midway loses nothing (the chunk runs again, a finished chunk never twice). "
            "A file that cannot be read fails alone. Progress: `done_pages` / `total_pages`, "
            "and `documents.extraction_progress` events on the live stream."
        ),
    )
    async def create(
        self, request: Req, data: JSONBody[JobIn], kernel: NamedDependency[Kernel]
    ) -> JobOut:
        settings = kernel.plugin_settings
        try:
            job = await create_job(
                kernel, data, settings.processing, settings.processing_chunk_pages,
                user_of(request), settings.processing_parallel_chunks,
            )  # fmt: skip
        except ValueError as exc:
            if type(exc) is not ValueError:
                raise
            raise ClientException(str(exc)) from None
        return job_out(job)

    @get("/{extraction_job_id:uuid}", guards=[requires(READ)], summary="A job's progress")
    async def show(
        self, kernel: NamedDependency[Kernel], extraction_job_id: FromPath[uuid.UUID]
    ) -> JobOut:
        job_id = extraction_job_id
        job = await kernel.db.scalar(select(ExtractionJob).where(ExtractionJob.id == job_id))
        if job is None:
            raise ExtractionNotFound(f"no extraction job {job_id}")
        return job_out(job)
