"""The background tasks of bulk jobs (registered in ``plugin.py``): one chunk, and the ZIP.

Each runs in the transaction the kernel opens for the task (its outbox row's done-mark commits
with the chunk's outcomes), so a delivery after a worker's death redoes exactly what was lost.
"""

from __future__ import annotations

import uuid

from backplane import Kernel
from backplane_documents.jobs_assemble import assemble
from backplane_documents.jobs_run import run_chunk


async def run_job_chunk(kernel: Kernel, job_id: str, chunk: int) -> None:
    """Render, meter and store chunk ``chunk`` of job ``job_id``; queue what comes next."""
    await run_chunk(kernel, uuid.UUID(job_id), chunk, kernel.plugin_settings.limits)


async def assemble_job_zip(kernel: Kernel, job_id: str) -> None:
    """Zip job ``job_id``'s documents into one stored file and finish the job."""
    await assemble(kernel, uuid.UUID(job_id))
