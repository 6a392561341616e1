"""Starting a bulk job: the upload read and spooled, the job row written, its first chunks queued.

The upload is read whole here (in a worker thread), so a file that cannot be read is refused at
once with the reason, and the job knows its total from the start. What is stored (through the
kernel's files service) is the spool of its rows, not the upload. The job row, the spool's
metadata, the audit row and the first chunk tasks commit together with the request: a request
that fails leaves no job, and a job never waits for a task that was not queued.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import IO, Annotated, Any

import msgspec

from backplane import Kernel
from backplane_documents.jobs_ahead import chunks_run_one_at_a_time
from backplane_documents.jobs_input import DataFormat, InputError, ReadOptions, read_rows
from backplane_documents.jobs_models import DocumentJob
from backplane_documents.jobs_progress import schedule_next
from backplane_documents.jobs_rows import declared_fields
from backplane_documents.jobs_settings import JobSettings
from backplane_documents.jobs_spool import Spooled, spool
from backplane_documents.models import DocumentTemplate, TemplateVersion
from backplane_documents.plugin import GENERATED_METER

READ_BYTES = 1024 * 1024


class JobOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to read the data and judge the job (query parameters of ``POST .../jobs``)."""

    format: DataFormat
    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    max_error_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    """Fail the job once more than this fraction of its rows failed (0.05: 5 %)."""
    name_field: str | None = None
    """The field whose value names each document in the ZIP (default: the row number)."""


class _ProbeRolledBackError(Exception):
    """Rolls back the quota probe's savepoint."""


async def check_quota(kernel: Kernel) -> None:
    """Refuse a job (QuotaExceeded: 429) when the tenant cannot generate one more document:
    one document is metered inside a savepoint that is then rolled back."""
    try:
        async with kernel.db.begin_nested():
            await kernel.usage.record(GENERATED_METER)
            raise _ProbeRolledBackError
    except _ProbeRolledBackError:
        pass


def _spool_upload(
    upload: IO[bytes], options: ReadOptions, out: IO[bytes], chunk_rows: int
) -> Spooled:
    upload.seek(0)
    spooled = spool(read_rows(upload, options), out, chunk_rows)  # type: ignore[arg-type]
    if spooled.rows == 0:
        raise InputError("the file holds no data rows")
    out.seek(0)
    return spooled


async def _read_back(out: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(out.read, READ_BYTES):
        yield chunk


async def create_job(
    kernel: Kernel,
    template: DocumentTemplate,
    version: TemplateVersion,
    upload: IO[bytes],
    options: JobOptions,
    settings: JobSettings,
    *,
    user_id: uuid.UUID | None,
    source: str = "api",
) -> DocumentJob:
    """A new job over ``upload`` (a file object at any position), its first chunks queued
    (``source="api"``) or left for the caller to run (``"cli"``). :class:`InputError` for a
    file that cannot be read (TooManyRowsError past the row limit); ``QuotaExceeded`` when
    the tenant's ``documents.generated`` quota is spent."""
    declared = declared_fields(version.field_schema)
    if options.name_field is not None and options.name_field not in declared.required:
        raise InputError(f"name_field {options.name_field!r} is not a field of the template")
    await check_quota(kernel)
    read_options = ReadOptions(
        format=options.format,
        encoding=options.encoding,
        delimiter=options.delimiter,
        max_rows=settings.max_rows,
        max_columns=settings.max_columns,
        max_line_bytes=settings.max_line_bytes,
    )
    job_id = uuid.uuid4()
    with tempfile.TemporaryFile(prefix="documents-job-") as out:
        spooled = await asyncio.to_thread(
            _spool_upload, upload, read_options, out, settings.chunk_rows
        )
        stored = await kernel.files.save(_read_back(out), name=f"documents-job-{job_id}-rows.jsonl")
    job = DocumentJob(
        id=job_id,
        template_id=template.id,
        version_id=version.id,
        version_number=version.number,
        status="queued",
        total=spooled.rows,
        done=0,
        failed=0,
        chunk_rows=settings.chunk_rows,
        chunks_total=len(spooled.offsets),
        chunks_done=0,
        chunks_enqueued=0,
        data_file_id=stored.id,
        offsets=spooled.offsets,
        data_size=spooled.size,
        max_error_rate=options.max_error_rate,
        name_field=options.name_field,
        source=source,
        created_by=user_id,
    )
    kernel.db.add(job)
    await kernel.db.flush()
    if source == "api":
        parallel = 1 if chunks_run_one_at_a_time(kernel) else settings.parallel_chunks
        for _ in range(min(parallel, job.chunks_total)):
            await schedule_next(kernel, job, inline=False)
    details: dict[str, Any] = {"template_id": str(template.id), "rows": job.total, "source": source}
    await kernel.audit.record("documents.job_created", target=("job", str(job.id)), details=details)
    await kernel.db.flush()
    return job
