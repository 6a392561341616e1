"""A :class:`backplane.FileStore` on any store obstore speaks.

obstore (Rust's ``object_store`` behind a small Python API, maintained by the Development Seed
and Apache Arrow people) streams both ways: ``put`` takes an async iterator and uploads it in
parts (a multipart upload on S3, aborted when the iterator raises, so a failed upload leaves
no object), and ``get`` with a byte range hands back an async stream. Nothing here holds a
whole file in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import obstore

from backplane import ObjectInfo, ObjectMissingError

READ_CHUNK_BYTES = 1024 * 1024


class ObjectFileStore:
    """Tenant files as objects of ``store`` (an obstore store, e.g. ``from_url("s3://...")``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def write(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        await obstore.put_async(self.store, key, counted())
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self.store, key, options=options)
        except FileNotFoundError:
            raise ObjectMissingError(f"no object {key!r}") from None
        async for chunk in result.stream(min_chunk_size=READ_CHUNK_BYTES):
            yield bytes(chunk)

    async def size(self, key: str) -> int:
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError:
            raise ObjectMissingError(f"no object {key!r}") from None
        return int(meta["size"])

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # some stores refuse a missing object
            await obstore.delete_async(self.store, key)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for batch in obstore.list(self.store, prefix=prefix or None):
            for meta in batch:
                yield ObjectInfo(
                    key=meta["path"],
                    size=int(meta["size"]),
                    modified=meta["last_modified"].timestamp(),
                )
