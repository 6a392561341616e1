"""Per-process caches of database reads that callers under load never wait for.

The hot paths (API-key authentication, the model registry) trust a cached read for a couple
of seconds, so that another process's change (a revoked key, a deleted model) is seen within
that bound. Expiring entries the plain way made every request in flight miss at the same
moment: at concurrency 32, 32 identical reads every two seconds, each a few hops to the
database driver, and every request of that moment stalled behind them (the p99 of the V2
inference benchmark).

:class:`RefreshAheadCache` keeps the same bound and removes the stall: a value younger than
half its ``max_age_s`` is returned as is; an older one is still returned while one read in
the background replaces it; only a value past ``max_age_s`` (or none) makes callers wait, and
concurrent waiters share one read. Under steady traffic nobody waits, and a value is never
served older than ``max_age_s`` after the read that produced it began.

Why not a library: ``async-lru`` shares concurrent misses but has no refresh ahead of expiry
(everyone in flight still waits for the re-read), and ``cashews`` has early refresh but is
built around a process-global cache object with its own backends and key templates; this is
one small class on the asyncio primitives, bound to the loop that uses it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)


class RefreshAheadCache(Generic[K, V]):
    """``await cache.get(key)``: the value ``load(key)`` read at most ``max_age_s`` ago.

    ``remember_none=False`` stores no ``None`` result (for keys a caller can invent, such as
    API key ids, so that random ones do not fill the cache). :meth:`forget` drops a key at
    once, including the result of a read already in flight (the process changed the row).
    """

    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        max_age_s: float,
        *,
        remember_none: bool = True,
        name: str = "cache",
    ) -> None:
        self._load = load
        self.max_age_s = max_age_s
        self._remember_none = remember_none
        self._name = name
        self._entries: dict[K, tuple[float, V]] = {}
        """key -> (when the read that produced the value began, the value)."""
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation: dict[K, int] = {}
        self.reads = 0
        """Reads started so far (tests count them)."""

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            age = time.monotonic() - entry[0]
            if age <= self.max_age_s:
                if age > self.max_age_s / 2:
                    self._start(key)  # refresh ahead; this caller does not wait for it
                return entry[1]
        return await asyncio.shield(self._start(key))

    def peek(self, key: K) -> V | None:
        """The value if it is within ``max_age_s``, else None; never reads."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def put(self, key: K, value: V, read_at: float | None = None) -> None:
        """Store a value the caller read itself (``read_at``: when its read began)."""
        self._store(key, value, time.monotonic() if read_at is None else read_at)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    def _start(self, key: K) -> asyncio.Task[V]:
        loop = asyncio.get_running_loop()
        running = self._loading.get(key)
        if running is not None and not running.done() and running.get_loop() is loop:
            return running
        # In an empty context: the read is shared and may outlive the request that started
        # it, so it must not run inside that request's span or carry its context variables.
        task = loop.create_task(self._read(key), context=contextvars.Context())
        self._loading[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _read(self, key: K) -> V:
        self.reads += 1
        generation = self._generation.get(key, 0)
        began = time.monotonic()
        value = await self._load(key)
        if self._generation.get(key, 0) == generation:
            self._store(key, value, began)
        return value

    def _store(self, key: K, value: V, read_at: float) -> None:
        if value is None and not self._remember_none:
            self._entries.pop(key, None)
        else:
            self._entries[key] = (read_at, value)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled() and task.exception() is not None:
            # Waiters got the error; a background refresh's error only leaves the old value
            # to expire (then the next caller's read raises it to that caller).
            log.warning("%s: reading %r failed: %s", self._name, key, task.exception())
