"""Render ahead: a chunk starts rendering the next chunk's rows while it stores, meters and
commits its own, when that next chunk is known to run after it in this process.

A chunk's task renders, then writes (its chunk file, usage, outcomes, the job's counters) and
commits; on SQLite the task holds the database's write lock from its claim to its commit, so
the next chunk cannot even start meanwhile, and the render workers would sit idle through
every chunk's writes and commit (measured in ``bench/documents``). Rendering is pure (the
template version and the spooled rows, both immutable), so the next chunk's documents can be
made early and handed to its task when it runs; that task still does everything that counts
(metering, storing, outcomes) in its own transaction, so crash safety and exact metering are
untouched: a worker killed loses the rendered documents with the rest, and the redelivered
task renders again. Rows whose fields a model computes are never rendered ahead (the model
call is metered and belongs to the chunk's own transaction).

Only where the next chunk is known to run next, here: the CLI (its chunks run one after
another in its one process) and SQLite, where a job's chunks are queued one at a time (see
:func:`chunks_run_one_at_a_time`), so that chunk ``n + 1`` is the one that runs after ``n``.
On PostgreSQL chunks of a job run in parallel (``documents.jobs.parallel_chunks``), which
overlaps one chunk's writes with another's renders already, and a chunk rendered ahead here
could be running in another worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from backplane import Kernel

AheadKey = tuple[uuid.UUID, int, uuid.UUID]
"""The job, the chunk and the template version."""

MAX_AHEAD = 4
"""Chunks rendered ahead and not yet taken, kept at most (a job that ended leaves its entry
behind; the oldest are dropped, with their documents)."""

_ahead: OrderedDict[AheadKey, asyncio.Task[Any]] = OrderedDict()


def start(key: AheadKey, work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` (rendering chunk ``key``) on this event loop now, for :func:`take`."""
    if key in _ahead:
        work.close()
        return
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieve)
    _ahead[key] = task
    while len(_ahead) > MAX_AHEAD:
        _, oldest = _ahead.popitem(last=False)
        oldest.cancel()


def take(key: AheadKey) -> asyncio.Task[Any] | None:
    """The rendering of chunk ``key`` started ahead in this event loop, if any (once)."""
    task = _ahead.pop(key, None)
    if task is None:
        return None
    if task.get_loop() is not asyncio.get_running_loop():  # another loop's (a test, a fork)
        with contextlib.suppress(RuntimeError):  # that loop is closed: nothing runs
            task.get_loop().call_soon_threadsafe(task.cancel)
        return None
    return task


def forget(job_id: uuid.UUID) -> None:
    """Drop what was rendered ahead for a job that will not use it (it ended)."""
    for key in [k for k in _ahead if k[0] == job_id]:
        _ahead.pop(key).cancel()


def chunks_run_one_at_a_time(kernel: Kernel) -> bool:
    """On SQLite a task holds the database's write lock from its claim to its commit: chunks
    queued in parallel would only wait for each other, in no set order. A job there queues its
    chunks one at a time (``parallel_chunks`` is for PostgreSQL) and renders each ahead."""
    return bool(kernel.db.get_bind().dialect.name == "sqlite")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A rendering ahead that failed is redone by its chunk; its error is not an unhandled one."""
    if not task.cancelled():
        task.exception()
