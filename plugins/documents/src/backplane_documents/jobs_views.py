"""What the API shows of jobs and their rows, and the queries behind it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_documents.jobs_models import DocumentJob, JobRow
from backplane_documents.jobs_progress import counters_of


class JobNotFound(LookupError):  # noqa: N818 - the HTTP status it becomes
    """No job with that id in this tenant (404)."""


class Progress(msgspec.Struct, kw_only=True):
    done: int
    """Documents produced."""
    failed: int
    """Rows that produced no document (see ``GET .../rows?failed=1``)."""
    total: int
    percent: float


class JobOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    template_id: uuid.UUID
    version: int
    status: str
    """``queued``, ``running``, ``assembling`` (the ZIP), then ``succeeded``, ``failed``
    (``error`` says why), ``quota_exceeded`` or ``cancelled``."""
    progress: Progress
    error: str | None
    max_error_rate: float | None
    zip_ready: bool
    """The ZIP of the documents produced can be downloaded (``GET .../zip``)."""
    source: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RowOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    number: int
    line: int
    status: str
    error: str | None = None
    name: str | None = None
    media_type: str | None = None
    pages: int | None = None
    size: int | None = None
    sha256: str | None = None
    report: dict[str, Any] = {}
    """The document's quality report (missing, unknown fields, problems, checksum)."""


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def job_out(job: DocumentJob) -> JobOut:
    counters = counters_of(job)
    created = _utc(job.created_at)
    assert created is not None
    return JobOut(
        id=job.id,
        template_id=job.template_id,
        version=job.version_number,
        status=job.status,
        progress=Progress(
            done=job.done, failed=job.failed, total=job.total, percent=counters.percent
        ),
        error=job.error,
        max_error_rate=job.max_error_rate,
        zip_ready=job.zip_file_id is not None,
        source=job.source,
        created_at=created,
        started_at=_utc(job.started_at),
        finished_at=_utc(job.finished_at),
    )


def row_out(row: JobRow) -> RowOut:
    return RowOut(
        number=row.number,
        line=row.line,
        status=row.status,
        error=row.error,
        name=row.name,
        media_type=row.media_type,
        pages=row.pages,
        size=row.size,
        sha256=row.sha256,
        report=row.report or {},
    )


async def find_job(db: AsyncSession, job_id: uuid.UUID) -> DocumentJob:
    """The tenant's job (another tenant's is not found, as a missing one)."""
    job = await db.scalar(select(DocumentJob).where(DocumentJob.id == job_id))
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


async def list_jobs(
    db: AsyncSession, limit: int, before: datetime | None, template_id: uuid.UUID | None
) -> list[DocumentJob]:
    query = select(DocumentJob).order_by(DocumentJob.created_at.desc(), DocumentJob.id)
    if before is not None:
        query = query.where(DocumentJob.created_at < before)
    if template_id is not None:
        query = query.where(DocumentJob.template_id == template_id)
    return list(await db.scalars(query.limit(limit)))


async def list_rows(
    db: AsyncSession, job: DocumentJob, *, failed: bool, after: int, limit: int
) -> list[JobRow]:
    """Outcomes of the job in row order, from row ``after + 1`` (keyset pages)."""
    query = select(JobRow).where(JobRow.job_id == job.id, JobRow.number > after)
    if failed:
        query = query.where(JobRow.status == "failed")
    return list(await db.scalars(query.order_by(JobRow.number).limit(limit)))
