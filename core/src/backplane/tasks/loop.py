"""The task runtime's event loop thread, and how dramatiq's worker threads hand runs to it.

Actor code is a coroutine; dramatiq calls actors in its worker threads. Each run is handed to
the runtime's one loop (with its database engine) and the worker thread waits for it, so
dramatiq's retries, time limits, dead-lettering and graceful shutdown apply unchanged. The
hand-off and the time limit are the per-run costs here, which is why both are hand-made:
see :class:`Handoff` and :class:`TimeLimit`. (One loop per worker thread instead was measured: no
faster, since the threads then wait on the database each in their own loop; ``bench/RESULTS.md``,
session 7 notes.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar

T = TypeVar("T")


class TimeLimit:
    """``asyncio.timeout`` for the current task of a known loop: cancels it after ``seconds``
    and turns that cancellation into :class:`TimeoutError`.

    Why not ``asyncio.timeout``: on Python 3.11 it asks for the running loop three times per use,
    and each time that is a ``getpid()`` system call, measured at 7 % of a task run's CPU."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("TimeLimit is used inside a task on its loop")
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._handle = loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        self._handle.cancel()
        # As asyncio.Timeout (Python 3.12's, which 3.11's equals unless the task was already
        # being cancelled on entry): our cancellation is withdrawn, and becomes a TimeoutError
        # unless somebody else asked to cancel the task meanwhile.
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and kind is asyncio.CancelledError
        ):
            raise TimeoutError from exc


class Handoff:
    """One coroutine run on the loop for one waiting thread (see :meth:`LoopThread.call`)."""

    __slots__ = ("_coro", "_done", "_exception", "_task")

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self._coro = coro
        self._done = threading.Lock()
        self._done.acquire()  # released when the task is done
        self._exception: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:  # on the loop
        self._task = loop.create_task(self._coro)
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:  # on the loop
        if task.cancelled():
            self._exception = CancelledError()
        else:
            self._exception = task.exception()
        self._done.release()

    def _cancel(self) -> None:  # on the loop, after start (callbacks run in order)
        if self._task is not None:
            self._task.cancel()

    def wait(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if not self._done.acquire(timeout=timeout):
            loop.call_soon_threadsafe(self._cancel)
            raise TimeoutError
        if self._exception is not None:
            raise self._exception


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

    def call(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        """Run ``coro`` on the loop and wait for it in the calling thread; on ``timeout``
        cancel it and raise :class:`TimeoutError`.

        What :meth:`submit` plus ``Future.result`` do, for the hot path of every task run,
        without a ``concurrent.futures.Future`` chained to the task (its state copying,
        condition variable and ``notify_all``): the task's done callback releases a lock the
        calling thread waits on."""
        handoff = Handoff(coro)
        self.loop.call_soon_threadsafe(handoff.start, self.loop)
        handoff.wait(self.loop, timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(10)
