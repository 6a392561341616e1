"""Dynamic batching: requests for one model queued briefly and run as one ``session.run``.

Requests whose inputs agree on everything but the batch (first) dimension are concatenated
along it, run once, and the outputs split back by row counts. When a run slot frees up (at most
``concurrency`` runs at once), the batcher takes up to ``max_batch_size`` queued rows, first
waiting up to ``max_queue_delay_us`` after the oldest request for more. Under load the queue
fills while the runs are busy, which is where batching pays: one call's fixed cost (Python,
the executor hand-off, onnxruntime's per-run setup) is shared and the kernels work on larger
blocks.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray[Any, Any]]
Run = Callable[[list[str], Feed], list[Any]]


@dataclass(slots=True)
class Timing:
    """Where one request's time went (nanoseconds), and how many requests shared its run."""

    queue_ns: int = 0
    compute_ns: int = 0
    batch_requests: int = 1
    batch_rows: int = 0
    run_id: int = 0
    """The batched run this request shared (unique per process); 0: a run of its own."""


_run_ids = itertools.count(1)


@dataclass(slots=True)
class _Item:
    feed: Feed
    rows: int
    shape_key: tuple[Any, ...]
    future: asyncio.Future[tuple[Feed, Timing]]
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)


def _shape_key(feed: Feed) -> tuple[Any, ...]:
    """What requests must agree on to share a run: every input's dtype and non-batch shape.
    Inputs that disagree on the batch dimension (one broadcasts against another) get a key equal
    to no other: concatenated with other requests, their rows would mix."""
    if len({a.shape[0] for a in feed.values()}) > 1:
        return (object(),)
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in sorted(feed.items()))


class DynamicBatcher:
    """One per loaded model with batching on; lives on the event loop that created it."""

    def __init__(
        self,
        run: Run,
        output_names: list[str],
        executor: Executor,
        *,
        max_batch_size: int,
        max_queue_delay_us: int,
        concurrency: int,
    ) -> None:
        self._run = run
        self._outputs = output_names
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_us / 1_000_000
        self._pending: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.disabled_reason: str | None = None

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Queue ``feed`` (every input with a batch axis) and wait for its own outputs."""
        rows = max(a.shape[0] for a in feed.values())
        item = _Item(feed, rows, _shape_key(feed), asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._dispatch())
        return await item.future

    def close_from_any_thread(self) -> None:
        """:meth:`close` on the batcher's own loop (eviction happens in a loading thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.close()
        else:
            loop.call_soon_threadsafe(self.close)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the model was unloaded"))

    async def _dispatch(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()
            try:
                if self.max_queue_delay_s > 0:
                    await self._wait_for_more()
            except asyncio.CancelledError:
                self._slots.release()  # closed while waiting: the slot is not lost
                raise
            batch = self._take()
            if not batch:
                self._slots.release()
                continue
            asyncio.get_running_loop().create_task(self._execute(batch))

    async def _wait_for_more(self) -> None:
        """Until the batch is full or the oldest request has waited ``max_queue_delay``."""
        while self._pending and sum(i.rows for i in self._pending) < self.max_batch_size:
            waited = (time.perf_counter_ns() - self._pending[0].enqueued_ns) / 1e9
            remaining = self.max_queue_delay_s - waited
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        """The oldest live request and those after it that fit and match its shapes."""
        while self._pending and self._pending[0].future.done():  # timed out or cancelled
            self._pending.popleft()
        if not self._pending:
            return []
        first = self._pending.popleft()
        batch, rows, kept = [first], first.rows, deque[_Item]()
        while self._pending and rows < self.max_batch_size:
            item = self._pending.popleft()
            if item.future.done():
                continue
            if item.shape_key == first.shape_key and rows + item.rows <= self.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        kept.extend(self._pending)
        self._pending = kept
        return batch

    async def _execute(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter_ns()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, batch)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._slots.release()
        compute = time.perf_counter_ns() - started
        total_rows = sum(i.rows for i in batch)
        run_id = next(_run_ids)
        for item, result in zip(batch, outputs, strict=True):
            if not item.future.done():
                timing = Timing(started - item.enqueued_ns, compute, len(batch), total_rows, run_id)
                item.future.set_result((result, timing))

    def _run_batch(self, batch: list[_Item]) -> list[Feed]:
        """In a pool thread: one run for the whole batch, split back per request."""
        if len(batch) == 1:
            results = self._run(self._outputs, batch[0].feed)
            return [dict(zip(self._outputs, results, strict=True))]
        feed = {
            name: np.concatenate([item.feed[name] for item in batch], axis=0)
            for name in batch[0].feed
        }
        results = self._run(self._outputs, feed)
        total = sum(item.rows for item in batch)
        if any(getattr(r, "shape", (None,))[:1] != (total,) for r in results):
            # Not one output row per input row: run each request alone, and stop batching.
            self.disabled_reason = "outputs do not have one row per input row"
            return [
                dict(zip(self._outputs, self._run(self._outputs, item.feed), strict=True))
                for item in batch
            ]
        bounds = np.cumsum([item.rows for item in batch])[:-1]
        split = [np.split(r, bounds, axis=0) for r in results]
        return [
            {name: split[o][i] for o, name in enumerate(self._outputs)} for i in range(len(batch))
        ]
