"""The import task: ``marketing.import_chunk`` imports the next ``import_chunk_rows`` rows of a
job and, in the same transaction, records where it stopped and enqueues itself for the rest.

A task run is one transaction (the kernel's outbox claims the task, runs it and commits both
together), so a worker killed with ``kill -9`` mid-chunk loses that chunk's writes and its
claim alike: the task is delivered again and redoes the chunk from the last committed
``offset``. Nothing is imported twice (upserts by email) and nothing is skipped. Progress
(done/failed/total) is on the job row after every chunk and published live
(``marketing.import.progress`` on ``GET /api/events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select

from backplane import FileNotFound, QuotaExceeded
from backplane_marketing.dialect import dialect_name, insert_for
from backplane_marketing.errors import MarketingError
from backplane_marketing.imports import Plan, converter_for, definitions, reader_for
from backplane_marketing.models import ImportJob, ImportRowError
from backplane_marketing.plugin import LIVE_IMPORT_PROGRESS, ROWS_IMPORTED_METER
from backplane_marketing.reader import ImportFileError, RecordReader
from backplane_marketing.rows import ContactRow, RowConverter, RowError
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.upsert import upsert_rows

FINISHED = ("succeeded", "failed")
YIELD_EVERY = 500
"""Records read between two turns of the event loop while a batch is being written."""


async def import_chunk(kernel: Any, import_id: str) -> None:
    """Import the job's next chunk (see the module docstring)."""
    db = kernel.db
    job = await db.scalar(
        select(ImportJob).where(ImportJob.id == uuid.UUID(import_id)).with_for_update()
    )
    if job is None or job.status in FINISHED:
        return
    job.status = "running"
    try:
        async with db.begin_nested():  # a failed chunk leaves no row of its own behind
            finished = await _run_chunk(kernel, job)
    except (MarketingError, ImportFileError, FileNotFound, QuotaExceeded) as error:
        job.status, job.error = "failed", str(error)[:2000]
        finished = True
    if finished:
        job.finished_at = datetime.now(UTC)
        if job.status != "failed":
            job.status = "succeeded"
        await kernel.events.emit("marketing.import_finished", progress_of(job))
    else:
        await kernel.tasks.enqueue("marketing.import_chunk", import_id)
    from backplane_marketing.automations.engine import kick

    await kick(kernel)  # the automations this chunk's new tags or subscriptions started
    await db.flush()
    with contextlib.suppress(Exception):  # a live stream being down never fails an import
        await kernel.live.publish(LIVE_IMPORT_PROGRESS, progress_of(job))


def progress_of(job: ImportJob) -> dict[str, Any]:
    return {
        "import_id": str(job.id),
        "status": job.status,
        "done": job.done,
        "failed": job.failed,
        "total": job.total,
        "bytes_read": job.offset,
        "total_bytes": job.total_bytes,
    }


async def _run_chunk(kernel: Any, job: ImportJob) -> bool:
    """Import up to ``import_chunk_rows`` rows; whether the file is done."""
    settings: MarketingSettings = kernel.plugin_settings
    plan = msgspec.convert(job.options, Plan)
    converter = converter_for(plan, await definitions(kernel.db), settings)
    reader = reader_for(kernel, job.file_id, plan, job.offset, job.line)
    try:
        return await _import_records(kernel, job, plan, converter, reader, settings)
    finally:
        await reader.aclose()


async def _import_records(
    kernel: Any,
    job: ImportJob,
    plan: Plan,
    converter: RowConverter,
    reader: RecordReader,
    settings: MarketingSettings,
) -> bool:
    batch: list[ContactRow] = []
    errors: list[tuple[int, str]] = []
    done = records = 0
    postgres = dialect_name(kernel.db) == "postgresql"
    batch_rows = settings.import_copy_rows if postgres else settings.import_batch_rows
    finished = False
    # one batch is written while the next is read and checked: the database works on its
    # core while this process parses (a write starts only after the previous one ended, so
    # duplicates across batches are still found, and the session has one user at a time)
    pending: asyncio.Task[int] | None = None
    try:
        while records < settings.import_chunk_rows:
            record = await reader.next()
            if record is None:
                finished = True
                break
            records += 1
            if record.error is not None:
                errors.append((record.line, record.error))
            elif record.cells is not None:
                try:
                    batch.append(converter.convert(record.line, record.cells))
                except RowError as error:
                    errors.append((record.line, str(error)))
                    if record.lines > 1:
                        reader.rewind(record.start, record.line - 1)
            if len(batch) >= batch_rows:
                done += await _settled(pending)
                pending = asyncio.ensure_future(_write(kernel, job, plan, batch, errors))
                batch = []
            elif pending is not None and records % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the pending write read its answer
        done += await _settled(pending)
        pending = None
    finally:
        if pending is not None:  # reading failed: the write must end before the rollback
            with contextlib.suppress(Exception):
                await pending
    done += await _write(kernel, job, plan, batch, errors)
    await _record_errors(kernel, job, errors, settings.max_reported_errors)
    job.done += done
    job.failed += len(errors)
    job.offset, job.line = reader.buffer.offset, reader.line_no
    if done:
        await kernel.usage.record(ROWS_IMPORTED_METER, done)
    return finished


async def _settled(pending: asyncio.Task[int] | None) -> int:
    return 0 if pending is None else await pending


async def _write(
    kernel: Any, job: ImportJob, plan: Plan, batch: list[ContactRow], errors: list[tuple[int, str]]
) -> int:
    if not batch:
        return 0
    written, duplicates = await upsert_rows(
        kernel.db, kernel.tenant_id, job.id, batch, list_id=plan.list_id, extra_tags=plan.tags
    )
    errors.extend(duplicates)
    return written


async def _record_errors(
    kernel: Any, job: ImportJob, errors: list[tuple[int, str]], limit: int
) -> None:
    room = max(limit - job.failed, 0)
    rows = [
        {"tenant_id": kernel.tenant_id, "import_id": job.id, "line": line, "reason": reason[:500]}
        for line, reason in sorted(errors)[:room]
    ]
    for start in range(0, len(rows), 2000):
        await kernel.db.execute(
            insert_for(kernel.db, ImportRowError)
            .values(rows[start : start + 2000])
            .on_conflict_do_nothing()
        )
