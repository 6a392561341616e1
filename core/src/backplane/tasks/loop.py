"""The task runtime's event loop thread.

Actor code is a coroutine; dramatiq calls actors in its worker threads. Each run is handed to
the runtime's one loop (with its database engine) with ``asyncio.run_coroutine_threadsafe``
and the worker thread waits for it, so dramatiq's retries, time limits, dead-lettering and
graceful shutdown apply unchanged. (One loop per worker thread instead was measured: no faster,
since the threads then wait on the database each in their own loop; ``bench/RESULTS.md``,
session 7 notes.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (a dependency except on Windows), else asyncio's.

    Every task run is a few hops between dramatiq's thread and this loop plus database round
    trips on it; uvloop (and asyncpg's fast path on it) roughly halves the loop's own cost."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread(threading.Thread):
    """An event loop in a thread: actor coroutines, the relay and the scheduler run here."""

    def __init__(self) -> None:
        super().__init__(name="backplane-tasks", daemon=True)
        self.loop = new_event_loop()
        self._ready = threading.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait(10)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it in the calling thread; after ``timeout``
        seconds cancel it and raise :class:`TimeoutError`."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # cancels the task on the loop
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(10)
