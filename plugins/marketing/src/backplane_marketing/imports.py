"""Import files: what a preview and a dry run report, and the job a real import queues.

The file is a kernel file (``POST /api/files`` streams it to the tenant's store); nothing here
holds more of it in memory than one record and a read-ahead of ``max_record_bytes``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy import select

from backplane import FileNotFound
from backplane_marketing.attributes import Definition, definitions_of
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import AttributeDefinition, ImportJob, MailingList
from backplane_marketing.reader import (
    SNIFF_BYTES,
    ImportFileError,
    RecordReader,
    check_encoding,
    sniff_dialect,
)
from backplane_marketing.rows import ImportOptions, RowConverter, RowError, checked_mapping
from backplane_marketing.settings import MarketingSettings


class RowReport(msgspec.Struct, kw_only=True, omit_defaults=True):
    line: int
    email: str | None = None
    name: str | None = None
    attributes: dict[str, Any] | None = None
    tags: list[str] | None = None
    error: str | None = None


class Plan(msgspec.Struct, kw_only=True):
    """How the file will be read: fixed when the import is queued."""

    format: str
    encoding: str
    delimiter: str
    quotechar: str
    header: list[str] | None
    mapping: dict[str, str]
    ignored_columns: list[str]
    offset: int
    line: int
    list_id: uuid.UUID | None
    tags: list[str]


class Preview(msgspec.Struct, kw_only=True):
    plan: Plan
    rows: list[RowReport]


class DryRun(msgspec.Struct, kw_only=True):
    """Every bad row (the first ``max_reported_errors``, ``failed`` counts them all)."""

    plan: Plan
    total: int
    valid: int
    failed: int
    errors: list[RowReport]


async def _chunks(kernel: Any, file_id: uuid.UUID, start: int = 0) -> AsyncIterator[bytes]:
    try:
        opened = await kernel.files.open(file_id)
    except FileNotFound:
        raise MarketingError(f"no file {file_id}", 404) from None
    async for chunk in opened.read(start):
        yield chunk


async def _sample(kernel: Any, file_id: uuid.UUID) -> bytes:
    data = bytearray()
    async for chunk in _chunks(kernel, file_id):
        data += chunk
        if len(data) >= SNIFF_BYTES:
            break
    return bytes(data[:SNIFF_BYTES])


async def definitions(db: Any) -> dict[str, Definition]:
    return definitions_of(await db.scalars(select(AttributeDefinition)))


async def plan_import(kernel: Any, file_id: uuid.UUID, options: ImportOptions) -> Plan:
    """Encoding checked, dialect sniffed, header read and mapping checked (4xx naming the
    problem); where the rows start."""
    settings: MarketingSettings = kernel.plugin_settings
    try:
        encoding = check_encoding(options.encoding)
    except ImportFileError as error:
        raise MarketingError(str(error), 422) from None
    if options.list_id is not None:
        found = await kernel.db.scalar(
            select(MailingList.id).where(MailingList.id == options.list_id)
        )
        if found is None:
            raise MarketingError(f"no list {options.list_id}", 404)
    known = await definitions(kernel.db)
    delimiter, quotechar = options.delimiter or ",", options.quotechar
    header: list[str] | None = None
    offset = line = 0
    if options.format == "csv":
        if options.delimiter is None:
            delimiter, quotechar = sniff_dialect(await _sample(kernel, file_id), encoding)
        reader = RecordReader(
            _chunks(kernel, file_id),
            fmt="csv",
            encoding=encoding,
            delimiter=delimiter,
            quotechar=quotechar,
            max_record_bytes=settings.max_record_bytes,
        )
        try:
            first = await reader.next()
        finally:
            await reader.aclose()
        if first is None or first.error is not None or not first.cells:
            reason = "the file is empty" if first is None else (first.error or "empty header")
            raise MarketingError(f"no header line: {reason}", 422)
        header = [str(c).strip() for c in first.cells]
        if undecoded := [c for c in header if any("\udc80" <= ch <= "\udcff" for ch in c)]:
            raise MarketingError(
                f"the header is not valid {encoding} ({undecoded[0]!r}); set `encoding`", 422
            )
        if len(set(header)) != len(header):
            raise MarketingError("the header names a column twice", 422)
        offset, line = first.end, reader.line_no
    mapping = checked_mapping(options.mapping, header, known)
    return Plan(
        format=options.format,
        encoding=encoding,
        delimiter=delimiter,
        quotechar=quotechar,
        header=header,
        mapping=mapping,
        ignored_columns=[c for c, target in mapping.items() if target == "ignore"],
        offset=offset,
        line=line,
        list_id=options.list_id,
        tags=options.tags,
    )


def reader_for(kernel: Any, file_id: uuid.UUID, plan: Plan, offset: int, line: int) -> RecordReader:
    settings: MarketingSettings = kernel.plugin_settings
    return RecordReader(
        _chunks(kernel, file_id, offset),
        fmt=plan.format,
        encoding=plan.encoding,
        delimiter=plan.delimiter,
        quotechar=plan.quotechar,
        offset=offset,
        line=line,
        max_record_bytes=settings.max_record_bytes,
    )


def converter_for(
    plan: Plan, known: dict[str, Definition], settings: MarketingSettings
) -> RowConverter:
    return RowConverter(
        plan.header,
        plan.mapping,
        known,
        settings.max_attribute_chars,
        settings.max_tags_per_contact,
    )


async def read_rows(
    kernel: Any, file_id: uuid.UUID, plan: Plan, offset: int, line: int
) -> AsyncIterator[RowReport]:
    """Every record from ``offset`` on, converted or with its error (not deduplicated)."""
    known = await definitions(kernel.db)
    converter = converter_for(plan, known, kernel.plugin_settings)
    reader = reader_for(kernel, file_id, plan, offset, line)
    try:
        async for row in _reports(reader, converter):
            yield row
    finally:
        await reader.aclose()


async def _reports(reader: RecordReader, converter: RowConverter) -> AsyncIterator[RowReport]:
    while (record := await reader.next()) is not None:
        if record.error is not None:
            yield RowReport(line=record.line, error=record.error)
            continue
        if record.cells is None:
            continue
        try:
            row = converter.convert(record.line, record.cells)
        except RowError as error:
            if record.lines > 1:
                reader.rewind(record.start, record.line - 1)
            yield RowReport(line=record.line, error=str(error))
            continue
        yield RowReport(
            line=row.line,
            email=row.email,
            name=row.name,
            attributes=row.attributes,
            tags=list(row.tags),
        )


async def preview(kernel: Any, file_id: uuid.UUID, options: ImportOptions) -> Preview:
    plan = await plan_import(kernel, file_id, options)
    rows: list[RowReport] = []
    reports: Any = read_rows(kernel, file_id, plan, plan.offset, plan.line)
    try:
        async for row in reports:
            rows.append(row)
            if len(rows) >= kernel.plugin_settings.preview_rows:
                break
    finally:
        await reports.aclose()
    return Preview(plan=plan, rows=rows)


async def dry_run(kernel: Any, file_id: uuid.UUID, options: ImportOptions) -> DryRun:
    """The whole file checked as the import would, nothing written. Duplicates are found by
    a set of 8-byte digests of the addresses seen (about 70 bytes per distinct address)."""
    plan = await plan_import(kernel, file_id, options)
    limit = kernel.plugin_settings.max_reported_errors
    seen: dict[bytes, int] = {}
    total = valid = failed = 0
    errors: list[RowReport] = []
    async for row in read_rows(kernel, file_id, plan, plan.offset, plan.line):
        total += 1
        if row.error is None and row.email is not None:
            digest = hashlib.blake2b(row.email.encode(), digest_size=8).digest()
            if digest not in seen:
                seen[digest] = row.line
                valid += 1
                continue
            duplicate = f"duplicate email {row.email} (line {seen[digest]})"
            row = RowReport(line=row.line, error=duplicate)  # noqa: PLW2901
        failed += 1
        if len(errors) < limit:
            errors.append(row)
    return DryRun(plan=plan, total=total, valid=valid, failed=failed, errors=errors)


async def count_lines(kernel: Any, file_id: uuid.UUID) -> tuple[int, int]:
    """``(lines, bytes)`` of the file, streamed: the progress total."""
    lines = size = 0
    last = b"\n"
    async for chunk in _chunks(kernel, file_id):
        lines += chunk.count(b"\n")
        size += len(chunk)
        last = chunk[-1:] or last
    return lines + (last != b"\n"), size


async def queue_import(
    kernel: Any, file_id: uuid.UUID, options: ImportOptions, user_id: uuid.UUID | None
) -> ImportJob:
    """The import job, and its first chunk task in the same transaction (the outbox)."""
    plan = await plan_import(kernel, file_id, options)
    lines, size = await count_lines(kernel, file_id)
    job = ImportJob(
        file_id=file_id,
        options=msgspec.to_builtins(plan),
        status="queued",
        total=max(lines - plan.line, 0),
        total_bytes=size,
        offset=plan.offset,
        line=plan.line,
        created_by=user_id,
    )
    kernel.db.add(job)
    await kernel.db.flush()
    await kernel.tasks.enqueue("marketing.import_chunk", str(job.id))
    return job
