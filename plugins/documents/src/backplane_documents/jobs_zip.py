"""The ZIP of a job's results, streamed from the stored chunk files into a stored file.

A job of 100,000 documents must never be held in memory, nor written to a local disk the
worker may not have: the documents are read from their chunk files (each chunk is its
documents back to back), cut at the offsets their rows recorded, and written one at a time
into a ``zipfile`` over a sink that hands its bytes on as they come. The standard library
writes a valid archive to a stream it cannot seek (data descriptors, ZIP64 when needed), read
through the central directory by every unzip tool.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime

import msgspec

COMPRESSIBLE = ("text/", "application/json", "application/xml", "image/svg+xml")
"""Media types worth deflating; PDF, DOCX and images are compressed already (stored as is)."""
FLUSH_BYTES = 256 * 1024


class ZipEntry(msgspec.Struct, frozen=True):
    name: str
    data: bytes
    media_type: str = "application/octet-stream"


class _Sink:
    """A write-only file for ``zipfile``: it collects bytes for the generator to hand on."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the generator takes the bytes."""

    def close(self) -> None:
        """Nothing to release."""

    def take(self) -> bytes:
        """The bytes written since the last take, joined: one block of about
        :data:`FLUSH_BYTES` for the files service to hash and write, rather than a header and a
        document at a time."""
        data = b"".join(self.parts)
        self.parts.clear()
        self.pending = 0
        return data


async def zip_stream(
    entries: AsyncIterable[ZipEntry], *, when: datetime, level: int = 6
) -> AsyncIterator[bytes]:
    """The bytes of a ZIP holding ``entries`` in order (names must be unique: see
    :class:`UniqueNames`), every entry dated ``when`` (the same archive for the same job)."""
    sink = _Sink()
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as archive:
        async for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=stamp)
            info.external_attr = 0o644 << 16
            if entry.media_type.startswith(COMPRESSIBLE):
                archive.writestr(info, entry.data, zipfile.ZIP_DEFLATED, level)
            else:
                archive.writestr(info, entry.data, zipfile.ZIP_STORED)
            if sink.pending >= FLUSH_BYTES:
                yield sink.take()
    if sink.pending:
        yield sink.take()


async def split_documents(
    chunks: AsyncIterable[bytes], spans: list[tuple[int, int]]
) -> AsyncIterator[bytes]:
    """Cut a chunk file's stream into its documents: the bytes ``[offset, offset + size)`` of
    each span, in order (spans sorted by offset, not overlapping; gaps are skipped)."""
    buffer = bytearray()
    position = 0  # the file offset of buffer[0]
    stream = aiter(chunks)
    for offset, size in spans:
        if offset < position:
            raise ValueError(f"spans overlap or are out of order at offset {offset}")
        end = offset + size
        while position + len(buffer) < end:
            try:
                more = await anext(stream)
            except StopAsyncIteration:
                raise ValueError(
                    f"the chunk file ends at byte {position + len(buffer)}, before {end}"
                ) from None
            buffer += more
        start = offset - position
        with memoryview(buffer) as view:  # one copy of the document, not two
            document = bytes(view[start : start + size])
        yield document
        del buffer[: start + size]
        position = end


_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(text: str, *, limit: int = 120) -> str:
    """A file name from a row's value: letters, digits, ``.-_`` and spaces, no path, no
    leading dot, at most ``limit`` characters (empty when nothing usable is left)."""
    normal = unicodedata.normalize("NFKC", text)
    cleaned = _UNSAFE.sub("_", normal).strip(" ._")
    return cleaned[:limit].rstrip(" ._")


class UniqueNames:
    """Archive names never repeat: a taken name gets ``-<row>`` before its extension."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, stem: str, extension: str, row: int) -> str:
        name = f"{stem}.{extension}" if extension else stem
        if name.lower() in self._taken:
            name = f"{stem}-{row}.{extension}" if extension else f"{stem}-{row}"
        suffix = 1
        while name.lower() in self._taken:  # the disambiguated name was a row's value too
            suffix += 1
            name = f"{stem}-{row}-{suffix}.{extension}" if extension else f"{stem}-{row}-{suffix}"
        self._taken.add(name.lower())
        return name
