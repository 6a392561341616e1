"""A job's counters after each chunk, what runs next, and the progress clients see live.

Chunks of a job may run at once (``documents.jobs.parallel_chunks``): each adds its counts to
the job's row under the row's lock, at the end of its transaction, so the counters and the
decision that follows (next chunk, the ZIP, or a stop) are taken by one chunk at a time, on
what the others committed. The ZIP is assembled once no chunk is left in flight: after the
last chunk, or after the job stopped (failed, out of quota, cancelled) and the chunks already
queued have finished, so that every document produced (and paid for) is delivered.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from backplane import Kernel
from backplane_documents.jobs_models import DocumentJob
from backplane_documents.jobs_state import TERMINAL, JobCounters, after_chunk

CHUNK_TASK = "documents.run_job_chunk"
ZIP_TASK = "documents.assemble_job_zip"
LIVE_EVENT = "documents.job_progress"
"""Published to the tenant's live stream (``GET /api/events``) after every chunk."""


def counters_of(job: DocumentJob, min_rows: int = 100) -> JobCounters:
    return JobCounters(
        status=job.status,  # type: ignore[arg-type]
        total=job.total,
        done=job.done,
        failed=job.failed,
        chunks_total=job.chunks_total,
        chunks_done=job.chunks_done,
        max_error_rate=job.max_error_rate,
        min_rows_for_rate=min_rows,
        error=job.error,
    )


def progress_of(job: DocumentJob) -> dict[str, Any]:
    counters = counters_of(job)
    return {
        "job": str(job.id),
        "status": job.status,
        "done": job.done,
        "failed": job.failed,
        "total": job.total,
        "percent": counters.percent,
    }


async def locked_job(kernel: Kernel, job_id: uuid.UUID) -> DocumentJob:
    """The job's row, locked until the transaction ends (PostgreSQL; SQLite writes one at a
    time anyway), read afresh rather than from the session's identity map."""
    job = await kernel.db.scalar(
        select(DocumentJob)
        .where(DocumentJob.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


async def after_chunk_applied(
    kernel: Kernel, job_id: uuid.UUID, done: int, failed: int, quota: str | None, *, inline: bool
) -> str:
    """Count a chunk's outcomes into the job, move it on (:func:`after_chunk`) and queue what
    comes next; the job's new status."""
    job = await locked_job(kernel, job_id)
    min_rows = kernel.plugin_settings.jobs.error_rate_min_rows
    moved = after_chunk(counters_of(job, min_rows), done, failed, quota)
    job.status, job.error = moved.status, moved.error
    job.done, job.failed, job.chunks_done = moved.done, moved.failed, moved.chunks_done
    now = datetime.now(UTC).replace(microsecond=0)
    job.started_at = job.started_at or now
    if job.status in TERMINAL:
        job.finished_at = job.finished_at or now
    await schedule_next(kernel, job, inline=inline)
    await kernel.db.flush()
    await publish(kernel, job)
    return job.status


async def count_skipped_chunk(kernel: Kernel, job_id: uuid.UUID, *, inline: bool) -> None:
    """A chunk that found its job ended: it counts as finished, so the ZIP of what the others
    produced is assembled once the last one in flight is through."""
    job = await locked_job(kernel, job_id)
    job.chunks_done += 1
    await schedule_next(kernel, job, inline=inline)


async def schedule_next(kernel: Kernel, job: DocumentJob, *, inline: bool) -> None:
    """Queue the next chunk of a running job, or the ZIP once no chunk is in flight."""
    if inline:
        return
    if job.status in ("queued", "running"):
        if job.chunks_enqueued < job.chunks_total:
            await kernel.tasks.enqueue(CHUNK_TASK, str(job.id), job.chunks_enqueued)
            job.chunks_enqueued += 1
        return
    if job.chunks_done >= job.chunks_enqueued and job.zip_file_id is None:
        await kernel.tasks.enqueue(ZIP_TASK, str(job.id))


async def publish(kernel: Kernel, job: DocumentJob) -> None:
    """The job's progress to the tenant's live streams, at once (a stream being down never
    fails a job: the API has the same numbers)."""
    with contextlib.suppress(Exception):
        await kernel.live.publish(LIVE_EVENT, progress_of(job))
