"""The export archive: one zip file of a tenant's (or one person's) data, written as it streams.

Plugins write into it from their ``export_tenant_data`` hook; the kernel passes each plugin its
own :class:`ExportArchive` view, so every entry is filed under the plugin's name:

- ``<plugin>/<table>.jsonl``: one JSON object per row (``add_table``, ``add_rows``);
- ``<plugin>/files/<name>``: a file's bytes, streamed in chunks (``add_file``);
- ``manifest.json`` (written last): the tenant, the subject, and for every entry its rows or
  bytes and its SHA-256, so a reader can check the archive is whole.

Rows are encoded with msgspec (UUIDs, aware datetimes, JSON columns and bytes all have a JSON
form), one row at a time, so neither a big table nor a big file is ever held in memory. The zip
is ZIP64 (entries and archives past 4 GiB) and deflated.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

MANIFEST = "manifest.json"
FORMAT = "backplane-export"
FORMAT_VERSION = 1
STREAM_ROWS = 500
"""Rows fetched per round trip while a table streams into the archive."""
_ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._-]{0,199})*\Z")


class ExportTooLargeError(ValueError):
    """The archive grew past its limit (``privacy.max_subject_export_bytes`` for one person)."""


class ExportEntryError(ValueError):
    """An entry name is unsafe (``..``, absolute, odd characters) or was written twice."""


@dataclass
class _State:
    """What every plugin's view of one archive shares: the zip, the limit, the manifest."""

    zip: zipfile.ZipFile
    limit: int | None
    on_rows: Any
    written: int = 0
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, size: int) -> None:
        self.written += size
        if self.limit is not None and self.written > self.limit:
            raise ExportTooLargeError(
                f"the export is larger than its limit of {self.limit} bytes "
                "(privacy.max_subject_export_bytes); export the whole tenant with "
                "`backplane tenants export` instead"
            )


class ExportArchive:
    """A plugin's view of an export archive (what ``export_tenant_data`` receives).

    ``tenant_id`` is the exported tenant; ``session`` the export's session (``kernel.db``),
    bound to that tenant; every method is a coroutine.
    """

    def __init__(
        self, state: _State, plugin: str, session: AsyncSession | None, tenant_id: Any
    ) -> None:
        self._state = state
        self.plugin = plugin
        self._session = session
        self.tenant_id = tenant_id

    async def add_table(
        self,
        table: Any,
        *where: ColumnElement[bool],
        redact: Iterable[str] = (),
        name: str | None = None,
    ) -> int:
        """Stream every row of ``table`` (a mapped class or a ``Table``) that has the tenant's
        ``tenant_id`` and matches ``where``, leaving out the ``redact`` columns (secrets, hashes);
        the rows written. Tables without a ``tenant_id`` column need ``where`` to select the
        tenant's rows, which ``name`` then names (default: the table's name)."""
        core: Table = table.__table__ if hasattr(table, "__table__") else table
        hidden = set(redact)
        unknown = hidden - set(core.c.keys())
        if unknown:
            raise ExportEntryError(f"{core.name} has no column {', '.join(sorted(unknown))}")
        columns = [c for c in core.c if c.key not in hidden]
        query = select(*columns)
        if "tenant_id" in core.c:
            query = query.where(core.c.tenant_id == self.tenant_id)
        elif not where:
            raise ExportEntryError(
                f"{core.name} has no tenant_id column: say which rows are the tenant's (where)"
            )
        return await self.add_query(name or core.name, query.where(*where))

    async def add_query(self, name: str, query: Select[Any]) -> int:
        """Stream the rows of a Core ``query`` (its own filters: nothing is added) as entry
        ``<plugin>/<name>.jsonl``; the rows written."""
        if self._session is None:
            raise ExportEntryError("this archive has no session: use add_rows")
        result = await self._session.stream(query.execution_options(yield_per=STREAM_ROWS))
        return await self.add_rows(name, (dict(row._mapping) async for row in result))

    async def add_rows(
        self, name: str, rows: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]
    ) -> int:
        """Write ``rows`` (mappings of JSON-encodable values, or an async stream of them) as
        entry ``<plugin>/<name>.jsonl``; the rows written. ``name`` is a table's name as a rule:
        the tenant export checks each table's count against the database by it."""
        entry = self._entry(f"{name}.jsonl")
        if name in self._state.tables:
            raise ExportEntryError(f"table {name!r} was exported twice")
        digest, count, size = hashlib.sha256(), 0, 0
        encoder = msgspec.json.Encoder()
        with self._state.zip.open(entry, "w", force_zip64=True) as out:
            async for row in _aiter(rows):
                line = encoder.encode(dict(row)) + b"\n"
                self._state.count(len(line))
                out.write(line)
                digest.update(line)
                count += 1
                size += len(line)
                if self._state.on_rows is not None:
                    self._state.on_rows(1)
        self._state.tables[name] = {
            "plugin": self.plugin,
            "entry": entry,
            "rows": count,
            "bytes": size,
            "sha256": digest.hexdigest(),
        }
        return count

    async def add_file(
        self,
        name: str,
        chunks: bytes | Iterable[bytes] | AsyncIterable[bytes],
        *,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Write a file as entry ``<plugin>/files/<name>`` (``name`` may hold ``/``), from its
        bytes or an (async) iterable of chunks, never all in memory; its SHA-256."""
        entry = self._entry(f"files/{name}")
        if entry in self._state.files:
            raise ExportEntryError(f"file {name!r} was exported twice")
        digest, size = hashlib.sha256(), 0
        with self._state.zip.open(entry, "w", force_zip64=True) as out:
            async for chunk in _aiter([chunks] if isinstance(chunks, bytes) else chunks):
                self._state.count(len(chunk))
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self._state.files[entry] = {
            "plugin": self.plugin,
            "bytes": size,
            "sha256": digest.hexdigest(),
            "content_type": content_type,
        }
        return digest.hexdigest()

    def _entry(self, name: str) -> str:
        entry = f"{self.plugin}/{name}"
        if not _ENTRY_NAME.match(entry) or ".." in entry.split("/"):
            raise ExportEntryError(f"unsafe entry name {name!r} in the export archive")
        return entry


class ArchiveWriter:
    """Opens the zip, hands out per-plugin views, and writes the manifest when closed."""

    def __init__(
        self,
        path: Path,
        *,
        tenant: Mapping[str, Any],
        subject: Mapping[str, Any] | None = None,
        limit: int | None = None,
        on_rows: Any = None,
    ) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._state = _State(self._zip, limit, on_rows)
        self._head = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": datetime.now(UTC),
            "tenant": dict(tenant),
            "subject": dict(subject) if subject is not None else None,
        }

    def view(self, plugin: str, session: AsyncSession | None, tenant_id: Any) -> ExportArchive:
        return ExportArchive(self._state, plugin, session, tenant_id)

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        """Each exported table's manifest record (``rows``, ``sha256``, ...), by name."""
        return self._state.tables

    def close(self, **extra: Any) -> dict[str, Any]:
        """Write ``manifest.json`` (with ``extra`` fields) and close the zip; the manifest."""
        manifest = {
            **self._head,
            **extra,
            "tables": dict(sorted(self._state.tables.items())),
            "files": dict(sorted(self._state.files.items())),
        }
        self._zip.writestr(MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
        self._zip.close()
        return manifest

    def abort(self) -> None:
        """Close and delete a half-written archive."""
        self._zip.close()
        self.path.unlink(missing_ok=True)


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> Any:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
