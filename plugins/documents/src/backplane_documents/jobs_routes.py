"""``/api/documents``: bulk jobs — start one from a CSV or JSON lines upload, follow its
progress, read its per-row errors and reports, download its ZIP, cancel it."""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime
from typing import IO, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from backplane import Kernel, requires
from backplane_documents.jobs_create import JobOptions, check_quota, create_job
from backplane_documents.jobs_input import (
    InputError,
    TooManyRowsError,
    check_encoding,
    detect_format,
)
from backplane_documents.jobs_progress import counters_of, locked_job, publish, schedule_next
from backplane_documents.jobs_state import TransitionError, move
from backplane_documents.jobs_views import (
    JobNotFound,
    JobOut,
    RowOut,
    find_job,
    job_out,
    list_jobs,
    list_rows,
    row_out,
)
from backplane_documents.plugin import READ, WRITE
from backplane_documents.routes_common import ERROR_HANDLERS, TAGS, user_of
from backplane_documents.routes_documents import attachment
from backplane_documents.settings import DocumentsSettings
from backplane_documents.templates import find_template, find_version

Req = Request[Any, Any, Any]
SPOOL_IN_MEMORY = 8 * 1024 * 1024


def _detail(status: int, message: str) -> Response[Any]:
    return Response({"status_code": status, "detail": message}, status_code=status)


def _input_error(_: Req, exc: InputError) -> Response[Any]:
    return _detail(413 if isinstance(exc, TooManyRowsError) else 400, str(exc))


def _not_found(_: Req, exc: JobNotFound) -> Response[Any]:
    return _detail(404, str(exc))


def _conflict(_: Req, exc: TransitionError) -> Response[Any]:
    return _detail(409, str(exc))


JOB_ERROR_HANDLERS: dict[int | type[Exception], Any] = {
    **ERROR_HANDLERS,
    InputError: _input_error,
    JobNotFound: _not_found,
    TransitionError: _conflict,
}


async def _receive(request: Req, limit: int) -> IO[bytes]:
    """The request body in a temporary file (in memory while small), refused with 413 as soon
    as it passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=_too_large(limit))
    spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise HTTPException(status_code=413, detail=_too_large(limit))
            spooled.write(part)
    except BaseException:
        spooled.close()
        raise
    if size == 0:
        spooled.close()
        raise InputError("the request has no body: send the CSV or JSON lines file as the body")
    return spooled


def _too_large(limit: int) -> str:
    return f"the upload is larger than {limit} bytes (documents.jobs.max_upload_bytes)"


class TemplateJobsController(Controller):
    path = "/templates"
    tags = TAGS
    exception_handlers = JOB_ERROR_HANDLERS

    @post(
        "/{template_id:uuid}/jobs",
        guards=[requires(WRITE)],
        request_max_body_size=None,  # documents.jobs.max_upload_bytes, checked as it streams
        status_code=202,
        summary="Generate a document per row of a CSV or JSON lines file (a background job)",
    )
    async def start_job(
        self,
        request: Req,
        template_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[DocumentsSettings],
        format: Annotated[
            str | None, QueryParameter(description="csv or jsonl (else from Content-Type)")
        ] = None,
        encoding: Annotated[str, QueryParameter(max_length=40)] = "utf-8-sig",
        delimiter: Annotated[str | None, QueryParameter(min_length=1, max_length=1)] = None,
        max_error_rate: Annotated[
            float | None, QueryParameter(ge=0, le=1, description="Fail above this failed share")
        ] = None,
        name_field: Annotated[str | None, QueryParameter(max_length=64)] = None,
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> JobOut:
        """The body is the data file. Each row becomes one document (or one row error); follow
        the job at ``GET /api/documents/jobs/{id}`` or on the live stream
        (``documents.job_progress``). 400 for a file that cannot be read, 413 past
        ``documents.jobs.max_upload_bytes`` or ``max_rows``, 429 when the tenant's
        ``documents.generated`` quota is spent."""
        options = JobOptions(
            format=detect_format(format, request.headers.get("content-type"), None),
            encoding=check_encoding(encoding),
            delimiter=delimiter,
            max_error_rate=max_error_rate,
            name_field=name_field,
        )
        template = await find_template(kernel.db, template_id)
        found = await find_version(kernel.db, template, version)
        await check_quota(kernel)  # 429 before the upload is read
        upload = await _receive(request, plugin_settings.jobs.max_upload_bytes)
        with upload:
            job = await create_job(
                kernel,
                template,
                found,
                upload,
                options,
                plugin_settings.jobs,
                user_id=user_of(request),
            )
        return job_out(job)


class JobsController(Controller):
    path = "/jobs"
    tags = TAGS
    exception_handlers = JOB_ERROR_HANDLERS

    @get("/", guards=[requires(READ)], summary="The tenant's bulk jobs, newest first")
    async def list_jobs(
        self,
        kernel: NamedDependency[Kernel],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        before: Annotated[
            datetime | None, QueryParameter(description="created_at of the last")
        ] = None,
        template_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
    ) -> list[JobOut]:
        return [job_out(j) for j in await list_jobs(kernel.db, limit, before, template_id)]

    @get("/{job_id:uuid}", guards=[requires(READ)], summary="A job's status and progress")
    async def get_job(self, job_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]) -> JobOut:
        return job_out(await find_job(kernel.db, job_id))

    @get(
        "/{job_id:uuid}/rows",
        guards=[requires(READ)],
        summary="Per-row outcomes with their quality reports (failed=1: the errors only)",
    )
    async def rows(
        self,
        job_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        failed: Annotated[bool, QueryParameter(description="Only rows that failed")] = False,
        after: Annotated[int, QueryParameter(ge=0, description="Last row number seen")] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[RowOut]:
        job = await find_job(kernel.db, job_id)
        found = await list_rows(kernel.db, job, failed=failed, after=after, limit=limit)
        return [row_out(r) for r in found]

    @get("/{job_id:uuid}/zip", guards=[requires(READ)], summary="The ZIP of the job's documents")
    async def download_zip(
        self, job_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> Stream:
        """Every document produced and ``manifest.jsonl`` (one line per row: its file or its
        error). 409 while the job runs."""
        job = await find_job(kernel.db, job_id)
        if job.zip_file_id is None:
            raise HTTPException(
                status_code=409,
                detail=f"the job is {job.status} ({job.done + job.failed} of {job.total} rows): "
                "its ZIP is made when it ends",
            )
        opened = await kernel.files.open(job.zip_file_id)
        return Stream(
            opened.read(),
            media_type="application/zip",
            headers={
                "Content-Disposition": attachment(f"documents-job-{job.id}.zip"),
                "Content-Length": str(opened.info.size),
            },
        )

    @post("/{job_id:uuid}/cancel", guards=[requires(WRITE)], status_code=200, summary="Stop a job")
    async def cancel(self, job_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]) -> JobOut:
        """Rows not yet started get no outcome; the chunks already running finish, then the
        ZIP of what was produced is made. 409 for a job that has ended or is being zipped."""
        await find_job(kernel.db, job_id)
        job = await locked_job(kernel, job_id)
        if job.status not in ("queued", "running"):
            raise TransitionError(f"a {job.status} job cannot be cancelled")
        job.status = move(counters_of(job), "cancelled").status
        job.finished_at = datetime.now(UTC).replace(microsecond=0)
        await schedule_next(kernel, job, inline=False)
        await kernel.db.flush()
        await publish(kernel, job)
        return job_out(job)
