"""Reading a bulk job's data: CSV or JSON lines, streamed, one row at a time with its line.

A bulk upload is an untrusted file of any size. Each row must reach the renderer with the line
it started on, so that a bad row becomes *that row's* error (the job goes on without it), while
a bad *file* (undecodable text, no header, an unknown encoding) is refused whole with a message
that says where and what to do. CSV goes through the standard library's ``csv`` module with
``csv.Sniffer`` picking the dialect (``,`` ``;`` tab or ``|``) unless the caller names the
delimiter; JSON lines through msgspec. Nothing here touches the database: the route and the
CLI call it in a worker thread.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal

import msgspec

DataFormat = Literal["csv", "jsonl"]
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
CSV_TYPES = ("text/csv", "application/csv", "text/tab-separated-values")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


class InputError(ValueError):
    """The file as a whole cannot be read (answered 400 with this message)."""


class TooManyRowsError(InputError):
    """The file holds more rows than ``max_rows`` (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file holds more than {limit} rows (the limit of one job)")
        self.limit = limit


class ReadOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to read one upload; every limit explicit."""

    format: DataFormat
    encoding: str = "utf-8-sig"
    """Any codec Python knows; ``utf-8-sig`` also drops a byte order mark."""
    delimiter: str | None = None
    """CSV only: the separator; None sniffs it from the start of the file."""
    max_rows: int = 100_000
    max_columns: int = 500
    max_line_bytes: int = 1_048_576
    """JSON lines only: a longer line is that row's error."""


class DataRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One data row: its number (1-based, header excluded), the line it starts on, and either
    its fields or why it cannot be used."""

    number: int
    line: int
    fields: dict[str, Any] | None = None
    error: str | None = None

    def describe(self) -> str:
        """``row 4 (line 5)``: how errors name the row."""
        return f"row {self.number} (line {self.line})"


def detect_format(explicit: str | None, content_type: str | None, name: str | None) -> DataFormat:
    """The format from what the caller said (``format=``), else the content type, else the
    file name's extension; :class:`InputError` when none of them says."""
    if explicit:
        lowered = explicit.lower()
        if lowered in ("csv", "tsv"):
            return "csv"
        if lowered in ("jsonl", "ndjson", "json-lines"):
            return "jsonl"
        raise InputError(f"unknown format {explicit!r}: use csv or jsonl")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in CSV_TYPES:
        return "csv"
    if media in JSONL_TYPES:
        return "jsonl"
    suffix = (name or "").rsplit(".", 1)[-1].lower() if "." in (name or "") else ""
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    raise InputError(
        "say what the data is: format=csv or format=jsonl, or a Content-Type of text/csv or "
        "application/x-ndjson"
    )


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; :class:`InputError` for one Python does not know."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    if not info._is_text_encoding:  # base64, zlib, ...: bytes to bytes
        raise InputError(f"{encoding!r} is not a text encoding")
    return info.name


def read_rows(stream: BinaryIO, options: ReadOptions) -> Iterator[DataRow]:
    """Every data row of ``stream`` in order: rows with an error included, blank lines left
    out. Raises :class:`InputError` for the file (at the point it is found) and
    :class:`TooManyRowsError` past ``options.max_rows``."""
    check_encoding(options.encoding)
    rows = _csv_rows(stream, options) if options.format == "csv" else _jsonl_rows(stream, options)
    for count, row in enumerate(rows, start=1):
        if count > options.max_rows:
            raise TooManyRowsError(options.max_rows)
        yield row


def _text_lines(stream: BinaryIO, encoding: str) -> Iterator[str]:
    """Lines of text with their endings (as ``newline=''`` keeps them, which csv needs),
    decoded line by line so that an undecodable byte is reported on its line. Encodings whose
    newline is not the byte ``\\n`` (UTF-16, UTF-32) are decoded as a stream instead."""
    if not _newline_is_one_byte(encoding):
        wrapper = io.TextIOWrapper(stream, encoding=encoding, newline="")
        try:
            yield from wrapper
        except UnicodeDecodeError as exc:
            raise InputError(f"the file is not valid {encoding}: {exc.reason}") from None
        finally:
            wrapper.detach()
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    for number, raw in enumerate(stream, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex()
            shown = encoding.removesuffix("-sig")
            raise InputError(
                f"line {number} is not valid {shown} (byte 0x{bad} at column {exc.start + 1}); "
                "name the file's encoding with encoding=..."
            ) from None


def _newline_is_one_byte(encoding: str) -> bool:
    """Whether the encoding writes a newline as the single byte ``\\n`` (ASCII-compatible)."""
    return len("a\n".encode(encoding)) - len("a".encode(encoding)) == 1 and "a\n".encode(
        encoding
    ).endswith(b"\n")


def _dialect(sample: str, delimiter: str | None) -> type[csv.Dialect] | csv.Dialect:
    if delimiter is not None:
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise InputError(f"delimiter must be one character other than quotes: {delimiter!r}")

        class Given(csv.excel):
            pass

        Given.delimiter = delimiter
        return Given
    # Sniff whole lines only: a line cut in the middle misleads the sniffer.
    cut = sample.rfind("\n")
    sample = sample[: cut + 1] if cut > 0 else sample
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        return csv.excel  # one column, or too little to tell: the common dialect
    sniffed.doublequote = True  # what spreadsheets write; the sniffer cannot tell it apart
    return sniffed


def _csv_rows(stream: BinaryIO, options: ReadOptions) -> Iterator[DataRow]:
    lines = _text_lines(stream, options.encoding)
    head: list[str] = []
    size = 0
    for line in lines:  # the sample for the sniffer: whole lines, about SNIFF_BYTES
        head.append(line)
        size += len(line)
        if size >= SNIFF_BYTES:
            break
    dialect = _dialect("".join(head), options.delimiter)
    reader = csv.reader(_chained(head, lines), dialect)
    header = _header(reader, options)
    consumed = reader.line_num
    number = 0
    while True:
        start = consumed + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            consumed = reader.line_num
            yield DataRow(number=number, line=start, error=f"not readable as CSV: {exc}")
            continue
        consumed = reader.line_num
        if not values or values == [""]:
            continue  # a blank line is no row
        number += 1
        yield _csv_row(number, start, header, values)


def _chained(head: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


def _header(reader: Any, options: ReadOptions) -> list[str]:
    for values in reader:
        if not values or values == [""]:
            continue
        names = [v.strip() for v in values]
        names[0] = names[0].removeprefix("\ufeff")
        if len(names) > options.max_columns:
            raise InputError(f"the header has {len(names)} columns; at most {options.max_columns}")
        seen: set[str] = set()
        for position, name in enumerate(names, start=1):
            if not name:
                raise InputError(
                    f"column {position} of the header (line {reader.line_num}) is empty"
                )
            if name in seen:
                raise InputError(f"column {name!r} appears twice in the header")
            seen.add(name)
        return names
    raise InputError("the file is empty: a CSV file needs a header line naming the fields")


def _csv_row(number: int, line: int, header: list[str], values: list[str]) -> DataRow:
    where = f"row {number} (line {line})"
    if len(values) != len(header):
        return DataRow(
            number=number,
            line=line,
            error=f"{where}: {len(values)} values for {len(header)} columns",
        )
    if any("\x00" in value for value in values):
        return DataRow(number=number, line=line, error=f"{where}: contains a NUL character")
    # An empty cell is an absent field: optional fields stay unset, required ones are named.
    fields = {name: value for name, value in zip(header, values, strict=True) if value != ""}
    return DataRow(number=number, line=line, fields=fields)


_DECODER = msgspec.json.Decoder()


def _jsonl_rows(stream: BinaryIO, options: ReadOptions) -> Iterator[DataRow]:
    number = 0
    for line, text in enumerate(_text_lines(stream, options.encoding), start=1):
        stripped = text.strip()
        if not stripped:
            continue
        number += 1
        where = f"row {number} (line {line})"
        raw = stripped.encode()
        if len(raw) > options.max_line_bytes:
            error = f"{where}: the line is longer than {options.max_line_bytes} bytes"
            yield DataRow(number=number, line=line, error=error)
            continue
        if b"\\u0000" in raw:
            yield DataRow(number=number, line=line, error=f"{where}: contains a NUL character")
            continue
        try:
            value = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            yield DataRow(number=number, line=line, error=f"{where}: invalid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            kind = type(value).__name__ if value is not None else "null"
            error = f"{where}: expected a JSON object, got {kind}"
            yield DataRow(number=number, line=line, error=error)
            continue
        yield DataRow(number=number, line=line, fields=value)
