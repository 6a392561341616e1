"""Reading bulk data: CSV dialects and encodings, JSON lines, line numbers, per-row errors."""

from __future__ import annotations

import io

import pytest

from backplane_documents.jobs_input import (
    DataRow,
    InputError,
    ReadOptions,
    TooManyRowsError,
    check_encoding,
    detect_format,
    read_rows,
)


def rows(data: bytes, **options: object) -> list[DataRow]:
    opts = ReadOptions(**{"format": "csv", **options})  # type: ignore[arg-type]
    return list(read_rows(io.BytesIO(data), opts))


def test_csv_rows_carry_their_number_and_starting_line() -> None:
    data = b'name,amount\nAda,12.5\n\nBob,"3"\n"Multi\nline",7\nEve,1\n'
    got = rows(data)
    assert [(r.number, r.line, r.fields) for r in got] == [
        (1, 2, {"name": "Ada", "amount": "12.5"}),
        (2, 4, {"name": "Bob", "amount": "3"}),
        (3, 5, {"name": "Multi\nline", "amount": "7"}),
        (4, 7, {"name": "Eve", "amount": "1"}),
    ]


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_the_dialect_is_sniffed(delimiter: str) -> None:
    data = delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join(["1", "x y", "3"]) + "\n"
    [row] = rows(data.encode())
    assert row.fields == {"a": "1", "b": "x y", "c": "3"}


def test_a_named_delimiter_wins_over_sniffing() -> None:
    data = b"a;b\n1,2;3\n"
    [row] = rows(data, delimiter=";")
    assert row.fields == {"a": "1,2", "b": "3"}
    with pytest.raises(InputError, match="delimiter"):
        rows(data, delimiter="ab")


def test_one_column_files_read_without_a_sniffable_delimiter() -> None:
    assert [r.fields for r in rows(b"name\nAda\nBob\n")] == [{"name": "Ada"}, {"name": "Bob"}]


def test_encodings_and_the_byte_order_mark() -> None:
    text = "name,city\nZoë,Zürich\n"
    [row] = rows(b"\xef\xbb\xbf" + text.encode())
    assert row.fields == {"name": "Zoë", "city": "Zürich"}
    [row] = rows(text.encode("latin-1"), encoding="latin-1")
    assert row.fields == {"name": "Zoë", "city": "Zürich"}
    [row] = rows(text.encode("utf-16"), encoding="utf-16")
    assert row.fields == {"name": "Zoë", "city": "Zürich"}


def test_undecodable_text_names_its_line_and_the_option() -> None:
    data = "name\nok\nZoë\n".encode("latin-1")
    with pytest.raises(InputError, match=r"line 3 is not valid utf-8.*0xeb.*encoding="):
        rows(data)
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        rows(b"a\n1\n", encoding="klingon")
    with pytest.raises(InputError, match="not a text encoding"):
        check_encoding("base64")


def test_header_problems_refuse_the_file() -> None:
    with pytest.raises(InputError, match="empty"):
        rows(b"")
    with pytest.raises(InputError, match="empty"):
        rows(b"\n\n")
    with pytest.raises(InputError, match="column 2 of the header"):
        rows(b"a,,c\n1,2,3\n")
    with pytest.raises(InputError, match="'a' appears twice"):
        rows(b"a,b,a\n1,2,3\n")
    with pytest.raises(InputError, match="3 columns; at most 2"):
        rows(b"a,b,c\n", max_columns=2)


def test_bad_rows_are_errors_of_their_own_and_reading_goes_on() -> None:
    data = b"a,b\n1,2\n1,2,3\n4\n5,\x006\n7,8\n"
    got = rows(data)
    assert [r.fields for r in got] == [{"a": "1", "b": "2"}, None, None, None, {"a": "7", "b": "8"}]
    assert got[1].error == "row 2 (line 3): 3 values for 2 columns"
    assert got[2].error == "row 3 (line 4): 1 values for 2 columns"
    assert got[3].error == "row 4 (line 5): contains a NUL character"
    assert got[4].number == 5


def test_an_overlong_csv_field_fails_its_row_only() -> None:
    big = b"x" * 140_000
    got = rows(b"a\n" + b'"' + big + b'"\nshort\n')
    assert got[0].error is not None
    assert "not readable as CSV" in got[0].error
    assert got[-1].fields == {"a": "short"}


def test_empty_cells_are_absent_fields() -> None:
    [row] = rows(b"a,b,c\n1,,3\n")
    assert row.fields == {"a": "1", "c": "3"}


def test_the_row_limit_refuses_the_file() -> None:
    data = b"a\n" + b"1\n" * 11
    assert len(rows(data, max_rows=11)) == 11
    with pytest.raises(TooManyRowsError, match="more than 10 rows"):
        rows(data, max_rows=10)


def jsonl(data: bytes, **options: object) -> list[DataRow]:
    return rows(data, **{"format": "jsonl", **options})


def test_json_lines_with_errors_per_line() -> None:
    data = (
        b'{"name": "Ada", "items": [{"q": 1}]}\n'
        b"\n"
        b"{not json}\n"
        b"[1, 2]\n"
        b'{"name": "\\u0000"}\n'
        b"null\n"
        b'{"name": "Eve"}'
    )
    got = jsonl(data)
    assert got[0] == DataRow(number=1, line=1, fields={"name": "Ada", "items": [{"q": 1}]})
    assert got[1].error is not None
    assert got[1].error.startswith("row 2 (line 3): invalid JSON")
    assert got[2].error == "row 3 (line 4): expected a JSON object, got list"
    assert got[3].error == "row 4 (line 5): contains a NUL character"
    assert got[4].error == "row 5 (line 6): expected a JSON object, got null"
    assert got[5] == DataRow(number=6, line=7, fields={"name": "Eve"})


def test_an_overlong_json_line_fails_its_row() -> None:
    data = b'{"a": "' + b"x" * 100 + b'"}\n{"a": 1}\n'
    got = jsonl(data, max_line_bytes=50)
    assert got[0].error == "row 1 (line 1): the line is longer than 50 bytes"
    assert got[1].fields == {"a": 1}


@pytest.mark.parametrize(
    ("explicit", "content_type", "name", "expected"),
    [
        ("csv", None, None, "csv"),
        ("JSONL", "text/csv", None, "jsonl"),
        (None, "text/csv; charset=utf-8", None, "csv"),
        (None, "application/x-ndjson", "x.csv", "jsonl"),
        (None, "application/octet-stream", "rows.ndjson", "jsonl"),
        (None, None, "people.CSV", "csv"),
    ],
)
def test_detect_format(
    explicit: str | None, content_type: str | None, name: str | None, expected: str
) -> None:
    assert detect_format(explicit, content_type, name) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(InputError, match="unknown format 'xml'"):
        detect_format("xml", None, None)
    with pytest.raises(InputError, match="format=csv or format=jsonl"):
        detect_format(None, "application/octet-stream", "data.bin")


def test_windows_line_ends_and_quoted_line_breaks() -> None:
    data = b'name;note\r\n"Ada";"two\r\nlines"\r\nBob;x\r\n'
    got = rows(data)
    assert [(r.number, r.line, r.fields) for r in got] == [
        (1, 2, {"name": "Ada", "note": "two\r\nlines"}),
        (2, 4, {"name": "Bob", "note": "x"}),
    ]
