"""The pure parts of bulk jobs: the spool, the ZIP stream, the state machine."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from backplane_documents.jobs_input import DataRow, ReadOptions, read_rows
from backplane_documents.jobs_spool import chunk_span, read_chunk, spool
from backplane_documents.jobs_state import (
    JobCounters,
    TransitionError,
    after_chunk,
    error_rate_exceeded,
    move,
)
from backplane_documents.jobs_zip import (
    UniqueNames,
    ZipEntry,
    safe_name,
    split_documents,
    zip_stream,
)


def test_the_spool_cuts_chunks_that_read_back_their_own_rows() -> None:
    data = b"n,v\n" + b"".join(f"{i},{'x' * (i % 7)}\n".encode() for i in range(1, 26))
    data += b"bad,row,here\n"
    out = io.BytesIO()
    spooled = spool(read_rows(io.BytesIO(data), ReadOptions(format="csv")), out, chunk_rows=10)
    assert (spooled.rows, spooled.unreadable, len(spooled.offsets)) == (26, 1, 3)
    assert spooled.size == len(out.getvalue())
    stored = out.getvalue()
    numbers = []
    for chunk in range(3):
        start, end = spooled.span(chunk)
        got = read_chunk(stored[start:end])
        assert len(got) == (10 if chunk < 2 else 6)
        numbers += [r.number for r in got]
    assert numbers == list(range(1, 27))
    last = read_chunk(stored[slice(*spooled.span(2))])[-1]
    assert last == DataRow(number=26, line=27, error="row 26 (line 27): 3 values for 2 columns")
    with pytest.raises(IndexError):
        chunk_span(spooled.offsets, spooled.size, 3)
    with pytest.raises(ValueError, match="chunk_rows"):
        spool([], io.BytesIO(), 0)


async def _stream(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_split_documents_cuts_across_read_boundaries() -> None:
    docs = [b"alpha", b"", b"bravo-charlie", b"d" * 1000]
    blob = b"".join(docs)
    spans, offset = [], 0
    for doc in docs:
        spans.append((offset, len(doc)))
        offset += len(doc)
    parts = [blob[i : i + 7] for i in range(0, len(blob), 7)]
    got = [d async for d in split_documents(_stream(parts), spans)]
    assert got == docs
    # gaps are skipped (a row's bytes left out)
    got = [d async for d in split_documents(_stream([blob]), [spans[0], spans[3]])]
    assert got == [docs[0], docs[3]]
    with pytest.raises(ValueError, match="ends at byte"):
        _ = [d async for d in split_documents(_stream([blob[:10]]), spans)]
    with pytest.raises(ValueError, match="out of order"):
        _ = [d async for d in split_documents(_stream([blob]), [spans[2], spans[0]])]


async def test_zip_stream_writes_a_valid_archive_in_pieces() -> None:
    noise = os.urandom(300_000)  # incompressible: more than one flush of the sink

    async def entries() -> AsyncIterator[ZipEntry]:
        yield ZipEntry("a.html", b"<p>hello</p>" * 50_000, "text/html")
        yield ZipEntry("b.pdf", b"%PDF-1.7 fake" + noise, "application/pdf")
        for i in range(100):
            yield ZipEntry(f"many/{i}.txt", str(i).encode(), "text/plain")

    when = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
    pieces = [p async for p in zip_stream(entries(), when=when)]
    assert len(pieces) > 1  # streamed, not built whole
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names[:2] == ["a.html", "b.pdf"]
    assert len(names) == 102
    assert archive.read("a.html") == b"<p>hello</p>" * 50_000
    assert archive.getinfo("a.html").compress_type == zipfile.ZIP_DEFLATED
    assert archive.getinfo("b.pdf").compress_type == zipfile.ZIP_STORED
    assert archive.getinfo("b.pdf").date_time == (2026, 12, 5, 18, 0, 0)
    assert archive.read("many/99.txt") == b"99"


def test_names_are_safe_and_unique() -> None:
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("Invoice #42 / ACME") == "Invoice _42 _ ACME"
    assert safe_name("...") == ""
    assert safe_name("Zoë") == "Zoë"
    names = UniqueNames()
    assert names.claim("inv", "pdf", 1) == "inv.pdf"
    assert names.claim("INV", "pdf", 2) == "INV-2.pdf"
    assert names.claim("inv-3", "pdf", 9) == "inv-3.pdf"
    assert names.claim("inv", "pdf", 3) == "inv-3-2.pdf"


def job(**changes: object) -> JobCounters:
    base = {"status": "queued", "total": 1000, "chunks_total": 10}
    return JobCounters(**{**base, **changes})  # type: ignore[arg-type]


def test_chunks_move_a_job_to_assembling_once_all_are_done() -> None:
    state = job()
    for _ in range(9):
        state = after_chunk(state, 95, 5)
        assert state.status == "running"
    state = after_chunk(state, 100, 0)
    assert (state.status, state.done, state.failed, state.percent) == ("assembling", 955, 45, 100)
    state = move(state, "succeeded")
    with pytest.raises(TransitionError, match="a succeeded job cannot become cancelled"):
        move(state, "cancelled")


def test_counting_past_the_total_is_a_bug_not_progress() -> None:
    with pytest.raises(ValueError, match="counted twice"):
        after_chunk(job(done=990, chunks_done=9), 20, 0)


def test_the_error_rate_fails_a_job_only_once_enough_rows_were_seen() -> None:
    limited = job(max_error_rate=0.1)
    state = after_chunk(limited, 50, 30)  # 37.5 % of 80 rows: too few rows to judge yet
    assert state.status == "running"
    state = after_chunk(state, 50, 0)  # 30 of 130: 23 %
    assert state.status == "failed"
    assert state.error == "30 of 130 rows failed (23.1%), above the job's max_error_rate of 10.0%"
    # a chunk finishing after the job failed is counted, the status stays
    late = after_chunk(state, 100, 0)
    assert (late.status, late.done) == ("failed", 200)
    # a small job is judged once every row was processed
    small = job(total=10, chunks_total=1, max_error_rate=0.5)
    assert after_chunk(small, 4, 6).status == "failed"
    assert after_chunk(small, 5, 5).status == "assembling"
    assert error_rate_exceeded(job()) is None


def test_a_spent_quota_stops_the_job_with_its_reason() -> None:
    state = after_chunk(job(status="running"), 10, 90, quota="quota for documents spent")
    assert (state.status, state.error) == ("quota_exceeded", "quota for documents spent")
