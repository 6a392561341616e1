"""Where tenant files' bytes live: a streaming object store behind ``register_storage_backends``.

Unlike model files (whole ``bytes``, :mod:`backplane.inference.storage`), tenant files may be
gigabytes: a store writes from an async iterator of chunks and reads a byte range as one, so
no file is ever held whole in memory. Objects are named by the caller (``<tenant>/<file id>``),
not by content: a tenant's files can then be listed and removed by prefix (tenant deletion),
deleting one tenant's file never touches another's (no reference counting across tenants),
and whether a file exists says nothing about another tenant's uploads.

The local store writes to a temporary file beside the target and renames it into place, so a
failed or interrupted upload never leaves a partial object under a valid name (the retention
task removes the temporary files a crash left).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import msgspec

from backplane.plugins import PluginSet
from backplane.storage_backends import choose_storage_backend

READ_CHUNK_BYTES = 1024 * 1024
"""What one read hands the response: large enough that a thread hop per chunk costs nothing
measurable (1,024 of them per GiB), small enough to keep a download's memory flat."""
TEMPORARY_PREFIX = ".upload."
_KEY = re.compile(r"^[A-Za-z0-9._-]{1,128}(/[A-Za-z0-9._-]{1,128}){0,3}\Z")


class ObjectMissingError(LookupError):
    """The store holds no object under that key."""


class ObjectInfo(msgspec.Struct, frozen=True):
    """One stored object, as :meth:`FileStore.list` reports it (for sweeping)."""

    key: str
    size: int
    modified: float
    """Unix time of its last write."""


class FileStore(Protocol):
    """Tenant files by key: what a storage backend's ``open_files(settings)`` returns.

    Every method is a coroutine (or an async iterator) so a store may do network I/O; a local
    one runs file I/O in worker threads."""

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Store what ``chunks`` yields under ``key`` and return its size. All or nothing:
        if ``chunks`` raises, the exception propagates and no object (nor part of one) is
        left under ``key``."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of the object (``end`` None: to its end), in chunks;
        :class:`ObjectMissingError` when iterated if there is no such object."""
        ...

    async def size(self, key: str) -> int:
        """The object's size; :class:`ObjectMissingError` if there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (nothing happens when there is none)."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (what the retention task sweeps)."""
        ...


class UnknownFileBackendError(LookupError):
    """``files.backend`` names no backend that stores tenant files."""


def check_key(key: str) -> str:
    """``key`` if it is a safe object name (up to four ``/``-separated segments of letters,
    digits, ``.``, ``_``, ``-``; none ``.`` or ``..``); ValueError otherwise."""
    if not _KEY.match(key) or ".." in key or "." in key.split("/"):
        raise ValueError(f"not a valid object key: {key!r}")
    return key


def open_file_store(plugins: PluginSet) -> FileStore:
    """The store ``files.backend`` names (a later plugin's backend of the same name replaces an
    earlier one's, the kernel's ``local`` included)."""
    store: FileStore = choose_storage_backend(
        plugins,
        setting="files.backend",
        name=plugins.settings.files.backend,
        opener=lambda backend: backend.open_files,
        missing=UnknownFileBackendError,
        what=" that stores files",
    )
    return store


def local_file_store(data_dir: Path) -> LocalFileStore:
    """The data directory's file store (``<data dir>/files``)."""
    return LocalFileStore(data_dir / "files")


class LocalFileStore:
    """``<root>/<key>`` on the local filesystem; writes go through a temporary file + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        temporary = path.parent / f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
        handle = await asyncio.to_thread(open, temporary, "xb")
        size, pending = 0, 0
        parts: builtins.list[bytes] = []  # written with writelines: no copy into one buffer
        try:
            async for chunk in chunks:
                part = bytes(chunk)  # the same object for bytes; a copy of a reusable buffer
                size += len(part)
                pending += len(part)
                parts.append(part)
                if pending >= READ_CHUNK_BYTES:  # one thread hop a MiB, not a packet
                    await asyncio.to_thread(handle.writelines, parts)
                    pending, parts = 0, []
            await asyncio.to_thread(handle.writelines, parts)
            await asyncio.to_thread(_flush_and_close, handle)
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            handle.close()
            temporary.unlink(missing_ok=True)
            raise
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb", buffering=0)
        except FileNotFoundError:
            raise ObjectMissingError(f"no object {key!r}") from None
        try:
            remaining = None if end is None else max(end - start, 0)
            if start:
                handle.seek(start)
            while remaining is None or remaining > 0:
                want = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def size(self, key: str) -> int:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            raise ObjectMissingError(f"no object {key!r}") from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        for info in await asyncio.to_thread(self._scan, prefix):
            yield info

    def _scan(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Every file under the root (temporary ones included: a crash leaves them), by key."""
        found: builtins.list[ObjectInfo] = []
        if not self.root.is_dir():
            return found
        for directory, _, names in os.walk(self.root):
            for name in names:
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                found.append(ObjectInfo(key, stat.st_size, stat.st_mtime))
        return found


def _flush_and_close(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def is_temporary(key: str) -> bool:
    """Whether ``key`` is an interrupted write's temporary file (swept once old)."""
    return key.rsplit("/", 1)[-1].startswith(TEMPORARY_PREFIX)
