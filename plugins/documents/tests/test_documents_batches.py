"""Bulk jobs render their rows in batches, one worker job per batch (a round trip per batch
rather than per document). Each row must still stand alone: its own fields check, its own time
limit, its own error, in its place; a row that stops its worker does not take the rows after it
down; and workers are retired on memory, not after a fixed count of rows."""

from __future__ import annotations

from backplane_documents.errors import RenderError
from backplane_documents.generation import VersionSnapshot
from backplane_documents.rendering import Rendered, RenderLimits, render_many
from backplane_documents.sandbox import Job, RenderPool

SLOW_WHEN_ASKED = (
    "<p>{{ name }}</p>"
    "{% if slow %}{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}{% endif %}"
)


def html(source: str) -> VersionSnapshot:
    schema = [{"name": "name"}, {"name": "slow", "type": "boolean", "required": False}]
    return VersionSnapshot("html", source.encode(), schema)


def test_each_row_of_a_batch_fails_alone_and_in_its_place() -> None:
    rows = [
        {"name": "a"},
        {"name": "b", "slow": True},  # past its time limit: its worker is killed
        {"slow": False},  # no name: refused before any worker sees it
        {"name": "d"},  # rendered by a fresh worker
        {"name": "e"},
    ]
    results = render_many(html(SLOW_WHEN_ASKED), rows, RenderLimits(timeout_s=2.0, workers=1))
    assert len(results) == len(rows)
    done = [r.content for r in results if isinstance(r, Rendered)]
    assert done == [b"<p>a</p>", b"<p>d</p>", b"<p>e</p>"]
    slow, missing = results[1], results[2]
    assert isinstance(slow, RenderError)
    assert slow.kind == "limit"
    assert "documents.render_timeout_s" in str(slow)
    assert isinstance(missing, RenderError)
    assert missing.kind == "fields"
    assert "name" in str(missing)
    assert isinstance(results[0], Rendered)
    assert isinstance(results[3], Rendered)


def test_a_batch_of_typst_rows_comes_back_in_order_with_page_counts() -> None:
    version = VersionSnapshot(
        "typst",
        b"#let d = json(bytes(sys.inputs.data))\n#for i in range(d.pages) [p #pagebreak()]",
        [{"name": "pages", "type": "integer"}],
    )
    results = render_many(version, [{"pages": n} for n in range(4)], RenderLimits(workers=1))
    assert [r.pages for r in results if isinstance(r, Rendered)] == [1, 2, 3, 4]


def test_a_worker_is_retired_once_its_memory_grew_past_the_threshold() -> None:
    job = Job("html", b"<p>x</p>", ["{}", "{}"], 1000, 1)
    kept = RenderPool(size=1, memory_bytes=0)
    grown = RenderPool(size=1, memory_bytes=0, recycle_memory_bytes=1)
    try:
        assert [r.content for r in kept.run(job, timeout_s=20)] == [b"<p>x</p>"] * 2
        assert [r.content for r in grown.run(job, timeout_s=20)] == [b"<p>x</p>"] * 2
        assert len(kept._idle) == 1  # a worker lives on across jobs...
        assert kept._idle[0].jobs == 2
        assert grown._idle == []  # ...unless it grew: retired, its memory given back
    finally:
        kept.close()
        grown.close()


def test_what_was_rendered_ahead_is_taken_once_in_its_own_loop_and_bounded() -> None:
    import asyncio
    import uuid

    from backplane_documents import jobs_ahead

    job, version = uuid.uuid4(), uuid.uuid4()

    async def made(value: int) -> int:
        return value

    async def first_loop() -> None:
        jobs_ahead.start((job, 1, version), made(1))
        jobs_ahead.start((job, 1, version), made(99))  # already under way: not started twice
        task = jobs_ahead.take((job, 1, version))
        assert task is not None
        assert await task == 1
        assert jobs_ahead.take((job, 1, version)) is None  # taken once
        for chunk in range(2, 3 + jobs_ahead.MAX_AHEAD):
            jobs_ahead.start((job, chunk, version), made(chunk))
        assert jobs_ahead.take((job, 2, version)) is None  # the oldest were dropped
        jobs_ahead.forget(job)
        assert jobs_ahead.take((job, 2 + jobs_ahead.MAX_AHEAD, version)) is None
        jobs_ahead.start((job, 7, version), made(7))

    asyncio.run(first_loop())

    async def second_loop() -> None:  # another loop (a test, a fork) never gets another's
        assert jobs_ahead.take((job, 7, version)) is None

    asyncio.run(second_loop())


PARENT_PAST_THE_THRESHOLD = """
from backplane_documents.sandbox import Job, RenderPool
ballast = bytearray(300 * 1024 * 1024)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
pool = RenderPool(size=1, memory_bytes=0, recycle_memory_bytes=200 * 1024 * 1024)
pool.run(Job("html", b"<p>x</p>", ["{}"], 1000, 1), timeout_s=20)
print(len(pool._idle))
pool.close()
"""


def test_a_worker_started_by_a_large_process_is_not_taken_for_a_grown_one() -> None:
    """A worker's peak is its own, not the peak of the server that started it (``ru_maxrss``
    survives exec: a server past the threshold had every worker retired after one job, which
    only the full suite's large test processes showed)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", PARENT_PAST_THE_THRESHOLD],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "1", done.stderr
