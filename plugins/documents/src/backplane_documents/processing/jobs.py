"""Bulk extraction: many stored files, cut into chunks of pages, one task per chunk.

Why it survives a worker's death: a chunk's pages, its usage and its progress are written in
the one transaction that runs its task, together with a ledger row keyed by ``(job, chunk)``.
A worker killed mid-chunk leaves nothing of that chunk, and the outbox delivers the task again;
a chunk that did commit is found in the ledger and skipped. Counters move by atomic
``UPDATE ... SET n = n + k``, so chunks of one job may run in parallel on several workers, and
the chunk that brings the count to the total is the one that finishes the document or job.

The job's row carries the plan (which pages of which extraction each chunk covers) so a chunk
task needs only ``(job_id, chunk)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from sqlalchemy import update

from backplane import QuotaExceeded
from backplane_documents.processing.classify import ClassifierSpec, classify_quietly, full_text
from backplane_documents.processing.extract import PDF, extract, extract_pdf_pages
from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.models import ChunkDone, DocumentExtraction, ExtractionJob
from backplane_documents.processing.pages import count_pages
from backplane_documents.processing.service import (
    PAGES_METER,
    Target,
    apply_target,
    find_target,
    page_rows,
    pages_of,
)

LIVE_EVENT = "documents.extraction_progress"
TERMINAL = ("succeeded", "failed", "quota_exceeded")


class JobIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A bulk extraction: stored files (the kernel's files service), optionally filled into a
    template's fields by rules."""

    file_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=1000)]
    template_id: uuid.UUID | None = None
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    rules: dict[str, Any] | None = None
    ocr: bool = True
    classify: ClassifierSpec | None = None
    """A tenant model classifying each document once its text is complete."""


class JobOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    status: str
    progress: float
    """Pages processed over pages planned, 0 to 1."""
    total_pages: int
    done_pages: int
    documents: int
    failed_documents: int
    chunks: int
    chunks_done: int
    template_id: uuid.UUID | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def job_out(job: ExtractionJob) -> JobOut:
    total = max(job.total_pages, 1)
    return JobOut(
        id=job.id,
        status=job.status,
        progress=round(min(job.done_pages / total, 1.0), 4) if job.total_pages else 1.0,
        total_pages=job.total_pages,
        done_pages=job.done_pages,
        documents=job.documents,
        failed_documents=job.failed_documents,
        chunks=len(job.chunks),
        chunks_done=job.chunks_done,
        template_id=job.template_id,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


async def read_file(kernel: Any, file_id: uuid.UUID, limits: ProcessingLimits) -> tuple[Any, bytes]:
    """A stored file's info and bytes; ExtractionError (413) past ``max_bytes`` without
    reading it."""
    opened = await kernel.files.open(file_id)
    if opened.info.size > limits.max_bytes:
        raise ExtractionError(
            f"file {file_id} has {opened.info.size} bytes; documents.processing.max_bytes is "
            f"{limits.max_bytes}",
            status_code=413,
        )
    return opened.info, b"".join([chunk async for chunk in opened.read()])


async def create_job(
    kernel: Any,
    data: JobIn,
    limits: ProcessingLimits,
    chunk_pages: int,
    user_id: uuid.UUID | None,
    parallel: int = 1,
) -> ExtractionJob:
    """Plan the job and enqueue its chunks, in the caller's transaction. A file that cannot
    be processed becomes a failed extraction of the job (the others go on); a missing file
    is FileNotFound (404) for the request. Files are read before anything is written: on
    SQLite a write transaction blocks every other writer while it lasts."""
    target = await find_target(kernel.db, data.template_id, data.version, data.rules)
    if data.classify is not None:  # an unknown model answers 404 now, not once per document
        await kernel.models.versions(data.classify.model)
    planned: list[tuple[uuid.UUID, str, str, int, str | None]] = []
    for file_id in data.file_ids:
        try:
            info, content = await read_file(kernel, file_id, limits)
        except ExtractionError as exc:
            planned.append((file_id, "", "", 0, exc.message))
            continue
        try:
            pages = await asyncio.to_thread(count_pages, content, info.content_type, limits)
            planned.append((file_id, info.name, info.content_type, pages, None))
        except ExtractionError as exc:
            planned.append((file_id, info.name, info.content_type, 0, exc.message))
    job = ExtractionJob(
        id=uuid.uuid4(),
        status="queued",
        total_pages=sum(p[3] for p in planned),
        done_pages=0,
        documents=len(planned),
        failed_documents=sum(1 for p in planned if p[4] is not None),
        chunks=[],
        chunks_done=0,
        template_id=target.template_id if target else None,
        version_number=target.version_number if target else None,
        rules=(msgspec.to_builtins(target.rules) if target else None),
        created_by=user_id,
    )
    chunks: list[list[Any]] = []
    rows = []
    for file_id, name, media_type, pages, error in planned:
        row = DocumentExtraction(
            id=uuid.uuid4(), file_id=file_id, name=name, media_type=media_type, pages=pages,
            done_pages=0, job_id=job.id, template_id=job.template_id,
            version_number=job.version_number, rules=job.rules, created_by=user_id,
            classifier=msgspec.to_builtins(data.classify) if data.classify else None,
            status="queued" if error is None else "failed", error=error,
        )  # fmt: skip
        rows.append(row)
        if error is None:
            step = chunk_pages if media_type == PDF else pages
            chunks.extend([str(row.id), s, min(s + step, pages)] for s in range(0, pages, step))
    job.chunks = chunks
    if not chunks:
        job.status, job.finished_at = "failed", _now()
        job.error = "no file of the job could be processed"
    kernel.db.add(job)
    await kernel.db.flush()
    kernel.db.add_all(rows)
    await kernel.db.flush()
    for index in range(min(parallel, len(chunks))):  # each chain enqueues its next chunk
        await kernel.tasks.enqueue(extract_chunk, str(job.id), index, data.ocr, parallel)
    return job


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _chunk_pages(
    kernel: Any, row: DocumentExtraction, start: int, stop: int, limits: ProcessingLimits,
    ocr: bool,
) -> list[Any]:  # fmt: skip
    _info, content = await read_file(kernel, row.file_id, limits)
    if row.media_type == PDF:
        return await asyncio.to_thread(extract_pdf_pages, content, limits, start, stop, ocr=ocr)
    extraction = await asyncio.to_thread(extract, content, row.media_type, limits, ocr=ocr)
    return extraction.pages


async def extract_chunk(
    kernel: Any, job_id: str, index: int, ocr: bool = True, stride: int = 1
) -> None:
    """The task: extract chunk ``index`` of job ``job_id`` (idempotent, see the module), then
    enqueue chunk ``index + stride`` in the same transaction: a job runs as ``stride`` chains
    of chunks, so it never floods the workers (on SQLite a task holds the database's write
    lock while it runs, and a queue of waiting tasks would time out).

    The pages are read before anything is written, so the write transaction (usage, ledger,
    pages, counters) is short: on SQLite it blocks every other writer while it lasts."""
    db = kernel.db
    job = await db.get(ExtractionJob, uuid.UUID(job_id))
    if job is None or job.status in TERMINAL or await db.get(ChunkDone, (job.id, index)):
        return
    extraction_id, start, stop = job.chunks[index]
    row = await db.get(DocumentExtraction, uuid.UUID(extraction_id))
    assert row is not None
    limits: ProcessingLimits = kernel.plugin_settings.processing
    pages: list[Any] = []
    failure: str | None = None
    if row.status != "failed":
        try:
            pages = await _chunk_pages(kernel, row, start, stop, limits, ocr)
        except ExtractionError as exc:
            failure = exc.message
    try:
        await kernel.usage.record(
            PAGES_METER, stop - start, transaction_id=f"documents.extraction:{job_id}:{index}"
        )
    except QuotaExceeded as exc:  # checked before anything was written: the session is intact
        job.status, job.error, job.finished_at = "quota_exceeded", str(exc), _now()
        await _publish(kernel, job)
        return
    db.add(ChunkDone(job_id=job.id, number=index, pages=stop - start))
    newly_failed = False
    if failure is not None:  # once per document, even when two of its chunks fail at once
        failed = await db.execute(
            update(DocumentExtraction)
            .where(DocumentExtraction.id == row.id, DocumentExtraction.status != "failed")
            .values(status="failed", error=failure[:2000], finished_at=_now())
            .returning(DocumentExtraction.id)
            .execution_options(synchronize_session=False)
        )
        newly_failed = failed.first() is not None
    elif row.status != "failed":
        db.add_all(page_rows(row.id, pages))
        await _document_progress(kernel, row, len(pages), stop - start)
    await db.flush()
    counted = (
        update(ExtractionJob)
        .where(ExtractionJob.id == job.id)
        .values(
            done_pages=ExtractionJob.done_pages + (stop - start),
            chunks_done=ExtractionJob.chunks_done + 1,
            failed_documents=ExtractionJob.failed_documents + int(newly_failed),
            status="running",
        )
        .returning(ExtractionJob.chunks_done)
        .execution_options(synchronize_session=False)
    )
    chunks_done = int((await db.execute(counted)).scalar_one())
    if index + stride < len(job.chunks):
        await kernel.tasks.enqueue(extract_chunk, job_id, index + stride, ocr, stride)
    await db.refresh(job)
    if chunks_done == len(job.chunks):
        everything_failed = job.failed_documents == job.documents
        job.status = "failed" if everything_failed else "succeeded"
        job.error = "every document failed" if everything_failed else None
        job.finished_at = _now()
    await _publish(kernel, job)


async def _document_progress(
    kernel: Any, row: DocumentExtraction, found: int, planned: int
) -> None:
    """Count a chunk's pages on its extraction; the chunk that completes it fills the fields."""
    counted = (
        update(DocumentExtraction)
        .where(DocumentExtraction.id == row.id)
        .values(
            done_pages=DocumentExtraction.done_pages + found,
            pages=DocumentExtraction.pages + (found - planned),  # DOCX: its real page count
            status="running",
        )
        .returning(DocumentExtraction.done_pages, DocumentExtraction.pages)
        .execution_options(synchronize_session=False)
    )
    done, pages = (await kernel.db.execute(counted)).one()
    if found != planned:
        await kernel.usage.record(PAGES_METER, found - planned)
        await kernel.db.execute(
            update(ExtractionJob)
            .where(ExtractionJob.id == row.job_id)
            .values(total_pages=ExtractionJob.total_pages + (found - planned))
            .values(done_pages=ExtractionJob.done_pages + (found - planned))
            .execution_options(synchronize_session=False)
        )
    await kernel.db.refresh(row)
    if done < pages:
        return
    row.status, row.finished_at = "done", _now()
    if row.template_id is not None and row.rules is not None and row.version_number:
        target = await find_target(kernel.db, row.template_id, row.version_number, row.rules)
        assert target is not None
        await kernel.db.flush()
        stored = await pages_of(kernel.db, row.id)
        from backplane_documents.processing.results import Extraction
        from backplane_documents.processing.service import page_text

        text = Extraction(media_type=row.media_type, pages=[page_text(p) for p in stored])
        row.fields, row.field_errors = apply_target(text, target)
    if row.classifier is not None:
        await kernel.db.flush()
        spec = msgspec.convert(row.classifier, ClassifierSpec)
        said = await classify_quietly(kernel, spec, full_text(await pages_of(kernel.db, row.id)))
        row.classification = msgspec.to_builtins(said)


async def _publish(kernel: Any, job: ExtractionJob) -> None:
    event = {"job": str(job.id), "status": job.status, "done_pages": job.done_pages,
             "total_pages": job.total_pages}  # fmt: skip
    with contextlib.suppress(Exception):  # a live stream being down never fails the job
        await kernel.live.publish(LIVE_EVENT, event)


__all__ = ["JobIn", "JobOut", "Target", "create_job", "extract_chunk", "job_out"]
