"""Bulk jobs under the data-rights hooks: a tenant's export has every job and row outcome; a
person's, the jobs they started (and those jobs' outcomes); an erasure unlinks them as author.

Row outcomes hold no row data (only numbers, errors and reports, which may quote a value in an
error message): they belong to the job. The spooled rows are deleted when a job ends; the ZIP
is a kernel file, exported and unlinked by the kernel itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from backplane_documents.jobs_models import DocumentJob, JobRow


async def export_jobs(kernel: Any, archive: Any, subject: Any) -> None:
    if subject is None:
        await archive.add_table(DocumentJob)
        await archive.add_table(JobRow)
        return
    if subject.user_id is None:
        return
    await archive.add_table(DocumentJob, DocumentJob.created_by == subject.user_id)
    theirs = select(DocumentJob.id).where(DocumentJob.created_by == subject.user_id)
    await archive.add_table(JobRow, JobRow.job_id.in_(theirs))


async def erase_jobs(kernel: Any, subject: Any) -> dict[str, int]:
    if subject.user_id is None:
        return {}
    result: Any = await kernel.db.execute(
        update(DocumentJob)
        .where(DocumentJob.created_by == subject.user_id)
        .values(created_by=None)
        .execution_options(synchronize_session=False)
    )
    return {DocumentJob.__tablename__: int(result.rowcount or 0)}
