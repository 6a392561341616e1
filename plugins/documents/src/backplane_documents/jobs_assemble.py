"""The end of a job: its documents and a manifest zipped into one stored file.

Runs once no chunk is in flight (see :mod:`backplane_documents.jobs_progress`), in one
transaction: the ZIP is streamed from the chunk files into the files service, then the chunk
files and the spooled rows are deleted (the ZIP is what is kept) and the job is finished. A
worker killed meanwhile leaves the job as it was (the half-written object is swept by the
kernel's retention task) and the redelivered task assembles it again.

The archive holds each produced document under its name (duplicates told apart by row
number) and ``manifest.jsonl``: one line per row of the data, in row order, with its status,
file name, pages, size and SHA-256, or its error, so the ZIP alone accounts for every row.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select

from backplane import FileNotFound, Kernel
from backplane_documents import jobs_ahead
from backplane_documents.jobs_models import DocumentJob, JobRow
from backplane_documents.jobs_progress import locked_job, publish
from backplane_documents.jobs_zip import UniqueNames, ZipEntry, split_documents, zip_stream

FINISHED_EVENT = "documents.job_finished"
OUTCOME_COLUMNS = (
    "number",
    "line",
    "status",
    "error",
    "file_id",
    "byte_offset",
    "size",
    "name",
    "media_type",
    "pages",
    "sha256",
    "report",
)
MANIFEST = "manifest.jsonl"


async def assemble(kernel: Kernel, job_id: uuid.UUID) -> DocumentJob | None:
    """Zip the job's documents, store the ZIP and finish the job (None: nothing to do)."""
    job = await locked_job(kernel, job_id)
    if job.zip_file_id is not None or job.status in ("queued", "running"):
        return None
    jobs_ahead.forget(job.id)  # a job that stopped early leaves a chunk rendered for nothing
    # Plain rows, not ORM objects: a job may have 100,000 of them.
    columns = [getattr(JobRow, name) for name in OUTCOME_COLUMNS]
    query = select(*columns).where(JobRow.job_id == job.id).order_by(JobRow.number)
    rows = list((await kernel.db.execute(query)).all())
    names = UniqueNames()
    archive_names: dict[int, str] = {}
    for row in rows:
        if row.status == "done" and row.name:
            stem, _, extension = row.name.rpartition(".")
            archive_names[row.number] = names.claim(stem or row.name, extension, row.number)
    when = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)
    zipped = zip_stream(_entries(kernel, rows, archive_names), when=when)
    info = await kernel.files.save(zipped, name=f"documents-job-{job.id}.zip")
    for file_id in {r.file_id for r in rows if r.file_id is not None} | {job.data_file_id}:
        if file_id is not None:
            with contextlib.suppress(FileNotFound):  # gone already: nothing to delete
                await kernel.files.delete(file_id)
    job.data_file_id = None
    job.zip_file_id = info.id
    if job.status == "assembling":
        job.status = "succeeded"
    job.finished_at = job.finished_at or datetime.now(UTC).replace(microsecond=0)
    await kernel.db.flush()
    await kernel.events.emit(
        FINISHED_EVENT,
        {
            "job_id": str(job.id),
            "template_id": str(job.template_id),
            "status": job.status,
            "done": job.done,
            "failed": job.failed,
            "total": job.total,
            "zip_file_id": str(info.id),
        },
    )
    await publish(kernel, job)
    return job


async def _entries(
    kernel: Kernel, rows: list[Any], names: dict[int, str]
) -> AsyncIterator[ZipEntry]:
    by_file: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        if row.status == "done" and row.file_id is not None:
            by_file.setdefault(row.file_id, []).append(row)
    for file_id, stored in by_file.items():
        stored.sort(key=lambda r: r.byte_offset or 0)
        opened = await kernel.files.open(file_id)
        spans = [(r.byte_offset or 0, r.size or 0) for r in stored]
        documents = split_documents(opened.read(), spans)
        for row in stored:
            data = await anext(documents)
            yield ZipEntry(names[row.number], data, row.media_type or "application/octet-stream")
    yield ZipEntry(MANIFEST, _manifest(rows, names), "application/json")


def _manifest(rows: list[Any], names: dict[int, str]) -> bytes:
    encoder = msgspec.json.Encoder()
    lines = []
    for row in rows:
        entry: dict[str, Any] = {"row": row.number, "line": row.line, "status": row.status}
        if row.status == "done":
            entry.update(
                file=names.get(row.number),
                pages=row.pages,
                size=row.size,
                sha256=row.sha256,
            )
        else:
            entry["error"] = row.error
        report = row.report or {}
        for key in ("missing", "unknown", "problems"):
            if report.get(key):
                entry[key] = report[key]
        lines.append(encoder.encode(entry) + b"\n")
    return b"".join(lines)
