"""Run one chunk of a bulk job: its rows rendered, metered, stored, and their outcomes written.

Everything a chunk changes happens in the caller's one transaction (a task's run, or a CLI
step): its outcome rows, its usage, its chunk file's metadata and the job's counters. A worker
killed in the middle leaves none of it, and the task's redelivery runs the chunk again from
the same spooled rows; the usage carries one transaction id per row, and the outcomes a primary
key per row, so nothing can be counted twice. Renders run in threads (the renderer blocks on
its sandboxed worker processes), as many at once as the render pool has workers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from sqlalchemy import func, insert, select

from backplane import FilesQuotaExceeded, FileTooLarge, Kernel, QuotaExceeded, UsageItem
from backplane_documents import jobs_ahead
from backplane_documents.computed import fill_computed
from backplane_documents.generation import VersionSnapshot
from backplane_documents.jobs_models import DocumentJob, JobRow
from backplane_documents.jobs_progress import after_chunk_applied, count_skipped_chunk
from backplane_documents.jobs_render import (
    Outcome,
    open_values,
    read_rows,
    render_ahead,
    render_all,
    rendered_ahead,
)
from backplane_documents.jobs_rows import Declared, declared_fields, document_stem
from backplane_documents.jobs_spool import chunk_span
from backplane_documents.models import TemplateVersion
from backplane_documents.plugin import GENERATED_METER, PAGES_METER
from backplane_documents.quality import report
from backplane_documents.rendering import RenderLimits

RUNNABLE = ("queued", "running")


class ChunkResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a chunk did (for the CLI's progress bar and the task's log)."""

    done: int
    failed: int
    status: str


async def run_chunk(
    kernel: Kernel, job_id: uuid.UUID, chunk: int, limits: RenderLimits, *, inline: bool = False
) -> ChunkResult | None:
    """Run chunk ``chunk`` of the job (None when there is nothing to do: the job is gone, has
    ended, or has this chunk's outcomes already). ``inline`` (the CLI) enqueues nothing."""
    db = kernel.db
    job = await db.scalar(select(DocumentJob).where(DocumentJob.id == job_id))
    if job is None:
        return None
    already = await db.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(JobRow.job_id == job.id, JobRow.chunk == chunk)
    )
    if already:
        return None
    if job.status not in RUNNABLE or job.data_file_id is None:
        jobs_ahead.forget(job.id)
        await count_skipped_chunk(kernel, job.id, inline=inline)
        return None
    version = await db.scalar(select(TemplateVersion).where(TemplateVersion.id == job.version_id))
    assert version is not None  # the job's foreign key keeps it
    snapshot = VersionSnapshot.of(version)
    declared = declared_fields(snapshot.field_schema)
    opened = await kernel.files.open(job.data_file_id)
    outcomes = await read_rows(opened, chunk_span(job.offsets, job.data_size, chunk))
    quota = await _fill_computed(kernel, outcomes, declared)
    ready = await rendered_ahead((job.id, chunk, version.id), outcomes)
    if ready is None:
        await render_all(outcomes, snapshot, declared, limits)
    else:
        outcomes = ready
    ahead = chunk + 1
    if (
        ahead < job.chunks_total
        and not declared.computed
        and (inline or jobs_ahead.chunks_run_one_at_a_time(kernel))
    ):
        span = chunk_span(job.offsets, job.data_size, ahead)
        work = render_ahead(opened, span, snapshot, declared, limits)
        jobs_ahead.start((job.id, ahead, version.id), work)
    quota = await _store(kernel, job, chunk, outcomes) or quota
    quota = await _meter(kernel, job, outcomes) or quota
    await _write_outcomes(kernel, job, chunk, outcomes, declared, limits)
    done = sum(o.error is None for o in outcomes)
    failed = len(outcomes) - done
    status = await after_chunk_applied(kernel, job.id, done, failed, quota, inline=inline)
    return ChunkResult(done=done, failed=failed, status=status)


async def _fill_computed(kernel: Kernel, outcomes: list[Outcome], declared: Declared) -> str | None:
    """The rows' computed fields, one model call per field for the chunk; a spent inference
    quota fails the rows still open and stops the job (its message)."""
    open_values(outcomes)
    if not declared.computed:
        return None

    async def infer(model: str, inputs: dict[str, Any], version: str | None) -> Mapping[str, Any]:
        # A refused call (a spent inference quota) may have written usage rows before it
        # raised: the savepoint takes them back, and the chunk goes on without the model.
        async with kernel.db.begin_nested():
            return await kernel.models.infer(model, inputs, version=version)

    values = [o.values for o in outcomes]
    try:
        errors = await fill_computed(values, declared.computed, infer, reraise=(QuotaExceeded,))
    except QuotaExceeded as exc:
        for outcome in outcomes:
            if outcome.error is None:
                outcome.error = f"{outcome.row.describe()}: computed fields: {exc}"
        return str(exc)
    for outcome, error in zip(outcomes, errors, strict=True):
        if error is not None:
            outcome.error = f"{outcome.row.describe()}: {error}"
    return None


async def _store(
    kernel: Kernel, job: DocumentJob, chunk: int, outcomes: list[Outcome]
) -> str | None:
    """Store the chunk's documents back to back as one file; a refusal of the files service
    fails the rendered rows and stops the job (its message)."""
    rendered = [o for o in outcomes if o.rendered is not None and o.error is None]
    if not rendered:
        return None
    position = 0
    for outcome in rendered:
        assert outcome.rendered is not None
        outcome.offset = position
        position += len(outcome.rendered.content)

    async def parts() -> AsyncIterator[bytes]:
        for outcome in rendered:
            assert outcome.rendered is not None
            yield outcome.rendered.content

    name = f"documents-job-{job.id}-chunk-{chunk:05d}.bin"
    try:
        info = await kernel.files.save(parts(), name=name, expected_size=position)
    except (FilesQuotaExceeded, FileTooLarge) as exc:
        message = f"the documents could not be stored: {exc}"
        for outcome in rendered:
            outcome.error = f"{outcome.row.describe()}: {message}"
            outcome.rendered = None
        return message
    for outcome in rendered:
        outcome.file_id = info.id
    return None


async def _meter(kernel: Kernel, job: DocumentJob, outcomes: list[Outcome]) -> str | None:
    """One ``documents.generated`` per document (and its pages), all rows in one batch; rows
    past a hard limit fail with the refusal, which stops the job."""
    produced = [o for o in outcomes if o.rendered is not None and o.error is None]
    if not produced:
        return None
    counted = await kernel.usage.record_many(
        [
            UsageItem(GENERATED_METER, 1, None, f"documents.job:{job.id}:{o.row.number}")
            for o in produced
        ],
        partial=True,
    )
    quota = None
    for outcome, result in zip(produced, counted, strict=True):
        if result.error is not None:
            quota = quota or result.error
            outcome.error = f"{outcome.row.describe()}: {result.error}"
            outcome.rendered = None
    kept = [o for o in produced if o.rendered is not None]
    if kept:
        paged = await kernel.usage.record_many(
            [
                UsageItem(
                    PAGES_METER,
                    o.rendered.pages if o.rendered else 0,
                    None,
                    f"documents.job-pages:{job.id}:{o.row.number}",
                )
                for o in kept
            ],
            partial=True,
        )
        quota = quota or next((r.error for r in paged if r.error is not None), None)
    return quota


async def _write_outcomes(
    kernel: Kernel,
    job: DocumentJob,
    chunk: int,
    outcomes: list[Outcome],
    declared: Declared,
    limits: RenderLimits,
) -> None:
    rows = []
    for outcome in outcomes:
        rendered = outcome.rendered if outcome.error is None else None
        quality = report(
            row=outcome.row.fields,
            declared=declared.required,
            computed=declared.computed,
            rendered=rendered,
            error=outcome.error,
            max_pages=limits.max_pages,
            max_bytes=limits.max_output_bytes,
        )
        stem = document_stem(
            outcome.values or outcome.row.fields, job.name_field, outcome.row.number, job.total
        )
        rows.append(
            {
                "tenant_id": kernel.tenant_id,
                "job_id": job.id,
                "number": outcome.row.number,
                "line": outcome.row.line,
                "chunk": chunk,
                "status": "done" if rendered is not None else "failed",
                "error": (outcome.error or "")[:2000] or None,
                "file_id": outcome.file_id if rendered is not None else None,
                "byte_offset": outcome.offset if rendered is not None else None,
                "size": len(rendered.content) if rendered is not None else None,
                "name": f"{stem}.{rendered.filename_ext}" if rendered is not None else None,
                "media_type": rendered.media_type if rendered is not None else None,
                "pages": rendered.pages if rendered is not None else None,
                "sha256": quality.sha256,
                "report": msgspec.to_builtins(quality),
            }
        )
    if rows:
        await kernel.db.execute(insert(JobRow), rows)
