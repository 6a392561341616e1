"""The background tasks of bulk jobs (registered in ``plugin.py``): one chunk, and the ZIP.

Each runs in the transaction the kernel opens for the task (its outbox row's done-mark commits
with the chunk's outcomes), so a delivery after a worker's death redoes exactly what was lost.
A chunk or ZIP that keeps failing (a bug, a store that stays down) fails its job on its last
attempt, with the reason, instead of leaving it ``running`` for ever.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from backplane import Kernel
from backplane_documents.jobs_assemble import assemble
from backplane_documents.jobs_progress import locked_job, publish, schedule_next
from backplane_documents.jobs_run import run_chunk
from backplane_documents.jobs_state import TERMINAL

RETRIES = 10
"""Deliveries after the first, with the kernel's backoff (``tasks.min_backoff_ms`` doubling)."""


async def run_job_chunk(kernel: Kernel, job_id: str, chunk: int) -> None:
    """Render, meter and store chunk ``chunk`` of job ``job_id``; queue what comes next."""
    try:
        async with kernel.db.begin_nested():
            await run_chunk(kernel, uuid.UUID(job_id), chunk, kernel.plugin_settings.limits)
    except Exception as exc:
        if kernel.attempt <= RETRIES:
            raise
        await fail_job(kernel, uuid.UUID(job_id), f"chunk {chunk + 1} failed: {exc}", chunk=True)


async def assemble_job_zip(kernel: Kernel, job_id: str) -> None:
    """Zip job ``job_id``'s documents into one stored file and finish the job."""
    try:
        async with kernel.db.begin_nested():
            await assemble(kernel, uuid.UUID(job_id))
    except Exception as exc:
        if kernel.attempt <= RETRIES:
            raise
        await fail_job(kernel, uuid.UUID(job_id), f"the ZIP could not be made: {exc}", chunk=False)


async def fail_job(kernel: Kernel, job_id: uuid.UUID, reason: str, *, chunk: bool) -> None:
    """The last attempt of a task gave up: the job fails with ``reason`` (a failed chunk still
    counts as finished, so the ZIP of what the others produced is made)."""
    job = await locked_job(kernel, job_id)
    if job.status not in TERMINAL:
        job.status = "failed"
        job.error = reason[:2000]
        job.finished_at = datetime.now(UTC).replace(microsecond=0)
    if chunk:
        job.chunks_done += 1
        await schedule_next(kernel, job, inline=False)
    await kernel.db.flush()
    await publish(kernel, job)
