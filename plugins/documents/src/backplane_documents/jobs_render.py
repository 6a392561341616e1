"""A bulk chunk's rows read from the spool and rendered: in batches, one worker job each, as
many at once as the render pool has workers, and, where it helps, ahead of the chunk's task
(:mod:`backplane_documents.jobs_ahead`). Nothing here touches the database."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from backplane_documents import jobs_ahead
from backplane_documents.generation import VersionSnapshot
from backplane_documents.jobs_input import DataRow
from backplane_documents.jobs_rows import Declared, template_fields
from backplane_documents.jobs_spool import read_chunk
from backplane_documents.rendering import Rendered, RenderError, RenderLimits, render_many

BATCH_ROWS = 16
"""Most rows of one render job sent to a worker at once."""


class Outcome(msgspec.Struct, kw_only=True):
    """One row's result while its chunk runs."""

    row: DataRow
    values: dict[str, Any] | None = None
    """The row with its computed fields (None when it could not be used)."""
    error: str | None = None
    rendered: Rendered | None = None
    file_id: uuid.UUID | None = None
    """The chunk file holding the document, and where in it."""
    offset: int | None = None


class Readable(Protocol):
    """An opened stored file (``kernel.files.open``): its bytes, without the session."""

    def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...


async def read_rows(opened: Readable, span: tuple[int, int]) -> list[Outcome]:
    """A chunk's spooled rows (``span``: its bytes in the spool), each as an outcome to fill
    (rows unreadable already failed)."""
    start, end = span
    data = b"".join([part async for part in opened.read(start, end)])
    return [Outcome(row=row, error=row.error) for row in read_chunk(data)]


async def render_ahead(
    opened: Readable,
    span: tuple[int, int],
    snapshot: VersionSnapshot,
    declared: Declared,
    limits: RenderLimits,
) -> list[Outcome]:
    """A chunk's rows read and rendered without the database (its task takes them: see
    :mod:`backplane_documents.jobs_ahead`)."""
    outcomes = await read_rows(opened, span)
    open_values(outcomes)
    await render_all(outcomes, snapshot, declared, limits)
    return outcomes


async def rendered_ahead(key: jobs_ahead.AheadKey, outcomes: list[Outcome]) -> list[Outcome] | None:
    """The chunk's outcomes as rendered ahead, if they were, of these very rows (None: render
    them now; also when that rendering failed, so that its error is the chunk's own)."""
    task = jobs_ahead.take(key)
    if task is None:
        return None
    try:
        ready: list[Outcome] = await task
    except Exception:  # noqa: BLE001 - rendered again by the caller, where errors are reported
        return None
    if [o.row for o in ready] != [o.row for o in outcomes]:
        return None
    return ready


def open_values(outcomes: list[Outcome]) -> None:
    """Each usable row's values (its fields; computed ones are added later)."""
    for outcome in outcomes:
        if outcome.error is None and outcome.row.fields is not None:
            outcome.values = dict(outcome.row.fields)


async def render_all(
    outcomes: list[Outcome], snapshot: VersionSnapshot, declared: Declared, limits: RenderLimits
) -> None:
    """The open rows rendered in batches, one worker job each (see :func:`batches`), by as many
    threads as the render pool has workers, each taking the next batch as soon as its last one
    is answered. (A thread per batch, handed out by the event loop, left the workers idle
    between batches whenever the loop was busy with the chunk's writes: measured in
    ``bench/documents``.)"""
    open_rows = [o for o in outcomes if o.error is None and o.values is not None]
    waiting = deque(batches(open_rows, limits.workers))

    def render_batches() -> None:
        while waiting:
            try:
                batch = waiting.popleft()
            except IndexError:  # another thread took the last one
                return
            rows = [template_fields(o.values or {}, declared) for o in batch]
            try:
                results = render_many(snapshot, rows, limits)
            except RenderError as exc:  # no worker could be had: the batch fails
                results = [exc] * len(batch)
            for outcome, result in zip(batch, results, strict=True):
                if isinstance(result, RenderError):
                    outcome.error = f"{outcome.row.describe()}: {result}"
                else:
                    outcome.rendered = result

    threads = min(limits.workers, len(waiting))
    await asyncio.gather(*(asyncio.to_thread(render_batches) for _ in range(threads)))


def batches(rows: list[Outcome], workers: int) -> list[list[Outcome]]:
    """The rows cut into worker jobs of at most ``BATCH_ROWS`` rows (a batch is one round trip
    to a worker instead of one per row), shrinking towards the end of the chunk (each a share
    of what is left) so that the workers finish together: with equal batches one worker sat
    idle for up to a batch's time at the end of every chunk (measured in ``bench/documents``)."""
    cut: list[list[Outcome]] = []
    start = 0
    while start < len(rows):
        size = max(1, min(BATCH_ROWS, -(-(len(rows) - start) // (workers * 2))))
        cut.append(rows[start : start + size])
        start += size
    return cut
