"""``/api/marketing/imports`` (preview, dry run, background imports with progress) and
``/api/marketing/exports`` (streamed CSV of all contacts or of a segment, audited)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, Principal, requires
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.exports import export_rows
from backplane_marketing.imports import DryRun, Preview, dry_run, preview, queue_import
from backplane_marketing.models import ImportJob, ImportRowError
from backplane_marketing.plugin import EXPORT, READ, WRITE
from backplane_marketing.rows import ImportOptions
from backplane_marketing.segment_store import segment_filter


class ImportIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A stored file (``POST /api/files``) and how to read it."""

    file_id: uuid.UUID
    options: ImportOptions = msgspec.field(default_factory=ImportOptions)


class Progress(msgspec.Struct, kw_only=True):
    """``done`` rows imported, ``failed`` rows reported bad, of about ``total`` (the file's
    data lines; a record spanning lines counts as more); ``fraction`` of the bytes read."""

    done: int
    failed: int
    total: int
    fraction: float


class ImportOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    file_id: uuid.UUID
    status: str
    progress: Progress
    error: str
    created_at: datetime
    finished_at: datetime | None


class RowErrorOut(msgspec.Struct, kw_only=True):
    line: int
    reason: str


def import_out(job: ImportJob) -> ImportOut:
    fraction = 1.0 if job.status == "succeeded" else job.offset / max(job.total_bytes, 1)
    return ImportOut(
        id=job.id,
        file_id=job.file_id,
        status=job.status,
        progress=Progress(
            done=job.done, failed=job.failed, total=job.total, fraction=round(fraction, 4)
        ),
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


async def _job(db: AsyncSession, import_id: uuid.UUID) -> ImportJob:
    job = await db.scalar(select(ImportJob).where(ImportJob.id == import_id))
    if job is None:
        raise MarketingError(f"no import {import_id}", 404)
    return job


class ImportsController(Controller):
    path = "/imports"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/preview", guards=[requires(WRITE)], status_code=200)
    async def preview(self, data: JSONBody[ImportIn], kernel: NamedDependency[Kernel]) -> Preview:
        """The dialect, header mapping and the first rows as they would be imported."""
        return await preview(kernel, data.file_id, data.options)

    @post("/dry-run", guards=[requires(WRITE)], status_code=200)
    async def dry_run(self, data: JSONBody[ImportIn], kernel: NamedDependency[Kernel]) -> DryRun:
        """The whole file checked, nothing written: every bad row with its line and reason."""
        return await dry_run(kernel, data.file_id, data.options)

    @post("/", guards=[requires(WRITE)], status_code=202)
    async def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ImportIn],
        kernel: NamedDependency[Kernel],
    ) -> ImportOut:
        """Queue the import; follow it at ``GET /imports/{id}`` or on ``GET /api/events``."""
        user = request.user.user_id if isinstance(request.user, Principal) else None
        return import_out(await queue_import(kernel, data.file_id, data.options, user))

    @get("/", guards=[requires(READ)])
    async def list_imports(
        self,
        db: NamedDependency[AsyncSession],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[ImportOut]:
        rows = await db.scalars(
            select(ImportJob).order_by(ImportJob.created_at.desc()).limit(limit)
        )
        return [import_out(r) for r in rows]

    @get("/{import_id:uuid}", guards=[requires(READ)])
    async def get_import(
        self, import_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> ImportOut:
        return import_out(await _job(db, import_id))

    @get("/{import_id:uuid}/errors", guards=[requires(READ)])
    async def errors(
        self,
        import_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        after_line: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 500,
    ) -> list[RowErrorOut]:
        """The import's bad rows by line (page on with ``after_line``)."""
        await _job(db, import_id)
        rows = await db.scalars(
            select(ImportRowError)
            .where(ImportRowError.import_id == import_id, ImportRowError.line > after_line)
            .order_by(ImportRowError.line)
            .limit(limit)
        )
        return [RowErrorOut(line=r.line, reason=r.reason) for r in rows]


class ExportsController(Controller):
    path = "/exports"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/contacts.csv", guards=[requires(EXPORT)])
    async def export_contacts(
        self,
        kernel: NamedDependency[Kernel],
        segment_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Only this segment's contacts")
        ] = None,
    ) -> Stream:
        """Every contact (or a segment's) as CSV, streamed page by page; audited."""
        where = (
            None
            if segment_id is None
            else await segment_filter(kernel.db, segment_id, kernel.plugin_settings)
        )
        await kernel.audit.record(
            "marketing.contacts_exported",
            target=("segment", segment_id) if segment_id else None,
            details={"segment_id": str(segment_id) if segment_id else None},
        )
        assert kernel.tenant_id is not None
        return Stream(
            export_rows(kernel, where),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
        )
