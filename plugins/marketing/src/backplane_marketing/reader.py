"""Reading an import file record by record from a byte stream, never whole: CSV (any
delimiter, found with ``csv.Sniffer``) or JSON lines, in any encoding whose line end is the byte
``\\n`` (UTF-8, Latin-1, Windows-1252, ...).

Every record carries the line it starts on and the byte offset just after it, so an import can
stop after any record and go on later from that offset (a task that was killed). A bad record
(broken quoting, undecodable bytes, a record longer than ``max_record_bytes``) is reported with
its line; when it spans several lines, reading goes on at its second line, so that one stray
quote costs one row, not the rest of the file.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec

BOM = codecs.BOM_UTF8
ESCAPED = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` makes of bytes the file's encoding cannot decode."""
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"


class ImportFileError(ValueError):
    """The file cannot be read at all as asked (unknown encoding, no header); ``str()`` says
    why. Bad rows are not this: they are reported one by one."""


class Record(msgspec.Struct, gc=False):
    """One record: its first line (1-based), the byte offset after it, and either its cells
    (a list for CSV, a dict for JSON lines) or why it is bad. Not tracked by the garbage
    collector (one per row; it holds no reference back to itself)."""

    line: int
    start: int
    end: int
    lines: int
    cells: Any = None
    error: str | None = None


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; refuses unknown ones and those whose line end is not the
    single byte ``\\n`` (UTF-16, UTF-32): records are found by that byte."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ImportFileError(f"unknown encoding {encoding!r}") from None
    if "\n".encode(name) != b"\n":
        raise ImportFileError(f"encoding {encoding!r} is not supported (use UTF-8 or Latin-1)")
    return name


def undecodable(text: str) -> str | None:
    """What ``surrogateescape`` kept of bytes the encoding could not decode (None: all fine)."""
    if ESCAPED.search(text) is None:  # the common case, scanned in C
        return None
    bad = [c for c in text if "\udc80" <= c <= "\udcff"]
    shown = " ".join(f"0x{ord(c) - 0xDC00:02x}" for c in bad[:3])
    return f"bytes not valid in the file's encoding ({shown}); set `encoding` (e.g. latin-1)"


def sniff_dialect(sample: bytes, encoding: str) -> tuple[str, str]:
    """``(delimiter, quotechar)`` of a CSV sample: ``csv.Sniffer`` on the sample, then on its
    header line alone (bad rows can confuse it), then the candidate the header holds most of
    (comma if none)."""
    text = sample.removeprefix(BOM).decode(encoding, "replace")
    cut = text.rfind("\n")
    text = text[: cut + 1] if cut > 0 else text
    header = text.split("\n", 1)[0]
    for attempt in (text, header):
        try:
            dialect = csv.Sniffer().sniff(attempt, delimiters=DELIMITERS)
        except csv.Error:
            continue
        return dialect.delimiter, dialect.quotechar or '"'
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return (best if counts[best] else ","), '"'


class _Buffer:
    """Bytes of the stream from ``base`` on, filled ahead of the reading position."""

    def __init__(self, chunks: AsyncIterator[bytes], offset: int, ahead: int) -> None:
        self.chunks, self.ahead = chunks, ahead
        self.data = bytearray()
        self.base = self.pos = 0
        self.base = offset
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    async def fill(self) -> None:
        if self.pos > 4 * self.ahead:  # drop what was read
            del self.data[: self.pos]
            self.base += self.pos
            self.pos = 0
        while not self.eof and len(self.data) - self.pos < self.ahead:
            try:
                self.data += await anext(self.chunks)
            except StopAsyncIteration:
                self.eof = True

    def line(self, limit_from: int, limit: int) -> bytes | None:
        """The next line (with its ``\\n``), None at the end; :class:`_TooLongError` if the line
        would take the record started at ``limit_from`` past ``limit`` bytes."""
        if self.pos >= len(self.data):
            return None
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            if not self.eof:
                raise _TooLongError
            end = len(self.data) - 1
        if self.base + end + 1 - limit_from > limit:
            raise _TooLongError
        line = bytes(self.data[self.pos : end + 1])
        self.pos = end + 1
        return line


class _TooLongError(Exception):
    pass


class RecordReader:
    """Records of one file from byte ``offset`` (line ``line`` already read) on."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        fmt: str,
        encoding: str,
        delimiter: str = ",",
        quotechar: str = '"',
        offset: int = 0,
        line: int = 0,
        max_record_bytes: int = 1024 * 1024,
    ) -> None:
        self.fmt, self.encoding = fmt, encoding
        self.delimiter, self.quotechar = delimiter, quotechar
        self.limit = max_record_bytes
        self.buffer = _Buffer(chunks, offset, max_record_bytes + 1)
        self.line_no = line
        self._start = offset
        self._reader: Iterator[list[str]] | None = None
        self._skip_rest = False

    async def aclose(self) -> None:
        """Stop reading the stream (its file handle or connection closes now)."""
        close = getattr(self.buffer.chunks, "aclose", None)
        if close is not None:
            await close()

    def _lines(self) -> Iterator[str]:
        while True:
            raw = self.buffer.line(self._start, self.limit)
            if raw is None:
                return
            if self.buffer.offset - len(raw) == 0:
                raw = raw.removeprefix(BOM)
            self.line_no += 1
            yield raw.decode(self.encoding, "surrogateescape")

    def _csv(self) -> Iterator[list[str]]:
        if self._reader is None:
            self._reader = csv.reader(
                self._lines(), delimiter=self.delimiter, quotechar=self.quotechar, strict=True
            )
        return self._reader

    async def next(self) -> Record | None:
        """The next record, None at the end of the file."""
        await self.buffer.fill()
        while self._skip_rest:  # the rest of a line longer than the limit
            buffer = self.buffer
            end = buffer.data.find(b"\n", buffer.pos)
            buffer.pos = len(buffer.data) if end < 0 else end + 1
            self._skip_rest = end < 0 and not buffer.eof
            await buffer.fill()
        start_offset, start_line = self.buffer.offset, self.line_no
        self._start = start_offset
        try:
            if self.fmt == "csv":
                cells: Any = next(self._csv())
            else:
                text = next(self._lines())
                if (reason := undecodable(text)) is not None:
                    return Record(start_line + 1, start_offset, self.buffer.offset, 1, None, reason)
                cells = None if not text.strip() else msgspec.json.decode(text)
        except StopIteration:
            return None
        except (_TooLongError, csv.Error, msgspec.DecodeError) as error:
            return self._bad(start_offset, start_line, _reason(error, self.limit))
        spanned = self.line_no - start_line
        if self.fmt == "csv" and (reason := undecodable("".join(cells))) is not None:
            return Record(start_line + 1, start_offset, self.buffer.offset, spanned, None, reason)
        if self.fmt == "jsonl" and cells is not None and not isinstance(cells, dict):
            return self._bad(start_offset, start_line, "a JSON line must hold an object")
        return Record(start_line + 1, start_offset, self.buffer.offset, spanned, cells)

    def _bad(self, start_offset: int, start_line: int, reason: str) -> Record:
        """Report the record and go on at its second line."""
        self.rewind(start_offset, start_line)
        return Record(start_line + 1, start_offset, self.buffer.offset, 1, None, reason)

    def rewind(self, start_offset: int, start_line: int) -> None:
        """Go on reading at the line after the one at ``start_offset`` (line ``start_line +
        1``): after a bad record, and after one that parsed but proved bad while it spanned
        several lines (a stray quote swallowing the next rows). Call before :meth:`next`."""
        self._reader = None
        self.buffer.pos = start_offset - self.buffer.base
        self.line_no = start_line
        self._start = start_offset
        try:
            next(self._lines())
        except _TooLongError:  # one line longer than the limit: skip to its end
            self.line_no += 1
            self._skip_rest = True


def _reason(error: Exception, limit: int) -> str:
    if isinstance(error, _TooLongError):
        return f"record longer than {limit} bytes (setting max_record_bytes); an unclosed quote?"
    if isinstance(error, csv.Error):
        return f"broken CSV quoting: {error}"
    return f"not valid JSON: {error}"
