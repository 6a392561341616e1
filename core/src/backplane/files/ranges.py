"""What a download answers, by RFC 9110: 304, 200, 206 (one range or ``multipart/byteranges``)
or 416, with the validators browsers and video players rely on.

The header grammar is werkzeug's (``parse_range_header``, ``is_resource_modified``,
``quote_etag``, ``http_date``: a library that has parsed these headers for every Flask app
for fifteen years); this module only decides, and streams the chosen bytes from the store.

- The ``ETag`` is the file's sha256 (a strong validator: it changes exactly when the bytes do)
  and ``Last-Modified`` its upload time.
- ``If-None-Match`` / ``If-Modified-Since`` answer 304 (the former wins when both are sent).
- ``Range`` (bytes only; an invalid header is ignored: 200): single, suffix (``-500``),
  open (``500-``) and several ranges; the unsatisfiable ones are dropped and 416 (with
  ``Content-Range: bytes */size``) answers when none is left. More ranges than
  ``files.max_ranges`` are ignored (200), as RFC 9110 14.2 allows.
- ``If-Range`` honours the range only when its strong ETag, or its date, matches exactly;
  otherwise the whole file is sent with 200.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from werkzeug.http import http_date, parse_if_range_header, parse_range_header, quote_etag
from werkzeug.sansio.http import is_resource_modified

Outcome = Literal["not_modified", "whole", "partial", "unsatisfiable"]
Reader = Callable[[int, int], AsyncIterator[bytes]]
"""``read(start, end)``: the bytes ``[start, end)`` of the file, in chunks."""


@dataclass(frozen=True)
class Resource:
    """What a download serves: the file's size, validators and type."""

    size: int
    sha256: str
    last_modified: datetime
    content_type: str

    @property
    def etag(self) -> str:
        quoted: str = quote_etag(self.sha256)
        return quoted


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    ranges: tuple[tuple[int, int], ...] = ()
    """``[start, end)`` pairs (``partial`` only)."""


def decide(headers: Mapping[str, str], resource: Resource, max_ranges: int) -> Decision:
    """The answer to a GET or HEAD with request ``headers`` (lower-case names)."""
    if not is_resource_modified(
        http_if_none_match=headers.get("if-none-match"),
        http_if_modified_since=headers.get("if-modified-since"),
        etag=resource.etag,
        last_modified=resource.last_modified,
    ):
        return Decision("not_modified")
    raw = headers.get("range")
    if raw is None:
        return Decision("whole")
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_matches(if_range, resource):
        return Decision("whole")
    parsed = parse_range_header(raw)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) > max_ranges:
        return Decision("whole")
    chosen = tuple(r for r in (_bounded(b, e, resource.size) for b, e in parsed.ranges) if r)
    if not chosen:
        return Decision("unsatisfiable")
    return Decision("partial", chosen)


def _if_range_matches(value: str, resource: Resource) -> bool:
    """RFC 9110 13.1.5: a strong ETag equal to ours, or a date exactly our Last-Modified (a
    weak ETag, a later date or anything unparsable does not match: the whole file is sent)."""
    if value.lstrip().startswith("W/"):
        return False
    parsed = parse_if_range_header(value)
    if parsed.etag is not None:
        return bool(parsed.etag == resource.sha256)
    if parsed.date is not None:
        return bool(parsed.date == resource.last_modified.replace(microsecond=0))
    return False


def _bounded(begin: int, end: int | None, size: int) -> tuple[int, int] | None:
    """One werkzeug range (``begin`` negative: a suffix) within ``size``; None when it is
    unsatisfiable."""
    if begin < 0:
        start, stop = max(size + begin, 0), size
    else:
        start, stop = begin, size if end is None else min(end, size)
    return (start, stop) if start < stop else None


def validators(resource: Resource) -> dict[str, str]:
    """Headers every answer carries (304 included)."""
    return {
        "ETag": resource.etag,
        "Last-Modified": http_date(resource.last_modified),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
    }


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"


class Multipart:
    """A ``multipart/byteranges`` body: its headers and length known before a byte is read."""

    def __init__(self, resource: Resource, ranges: tuple[tuple[int, int], ...]) -> None:
        self.boundary = secrets.token_hex(16)
        self.ranges = ranges
        self.part_heads = [
            (
                f"--{self.boundary}\r\nContent-Type: {resource.content_type}\r\n"
                f"Content-Range: {content_range(s, e, resource.size)}\r\n\r\n"
            ).encode()
            for s, e in ranges
        ]
        self.tail = f"--{self.boundary}--\r\n".encode()
        self.length = sum(
            len(h) + (e - s) + 2 for h, (s, e) in zip(self.part_heads, ranges, strict=True)
        ) + len(self.tail)

    @property
    def content_type(self) -> str:
        return f"multipart/byteranges; boundary={self.boundary}"

    async def body(self, read: Reader) -> AsyncIterator[bytes]:
        for head, (start, end) in zip(self.part_heads, self.ranges, strict=True):
            yield head
            async for chunk in read(start, end):
                yield chunk
            yield b"\r\n"
        yield self.tail
