"""Per-process caches of database reads that callers under load never wait for.

The hot paths (API-key authentication, the model registry, plan features) trust a cached read
for a couple of seconds, so that another process's change (a revoked key, a deleted model) is
seen within that bound. Expiring entries the plain way made every request in flight miss at the
same moment: at concurrency 32, 32 identical reads every two seconds, each a few hops to the
database driver, and every request of that moment stalled behind them (the p99 of the V2
inference benchmark).

:class:`RefreshAheadCache` keeps the same bound and removes the stall: a value younger than
half its ``max_age_s`` is returned as is; an older one is still returned while one read in
the background replaces it; only a value past ``max_age_s`` (or none) makes callers wait, and
concurrent waiters share one read. Under steady traffic nobody waits. A cached value is never
returned more than ``max_age_s`` after the read that produced it began; a caller that waits
gets the answer of a read that began at most ``max_age_s`` before it asked.

Why not a library: ``async-lru`` shares concurrent misses but has no refresh ahead of expiry
(everyone in flight still waits for the re-read), and ``cashews`` has early refresh but is
built around a process-global cache object with its own backends and key templates; this is
one small class on the asyncio primitives. Reads in flight are tracked per event loop (a read
started on another loop is never joined).
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


def always(_value: object) -> bool:
    return True


class RefreshAheadCache(Generic[K, V]):
    """``await cache.get(key)``: the value ``load(key)`` read at most ``max_age_s`` ago.

    ``remember(value)`` False leaves a result out of the cache (for values a caller can
    provoke with invented keys: an unknown API key id, a model name nobody uploaded), so that
    such keys cannot fill memory. :meth:`forget` is for a change this process makes: it drops
    the key, detaches any read in flight (later callers start a new one), and stores nothing
    for the key for ``max_age_s``, so a read that raced the change's commit is not kept.
    """

    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        max_age_s: float,
        *,
        remember: Callable[[V], bool] = always,
        name: str = "cache",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.max_age_s = max_age_s
        self._remember = remember
        self._name = name
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        """key -> (when the read that produced the value began, the value)."""
        self._loading: dict[K, tuple[float, asyncio.Task[V]]] = {}
        """key -> (when the read in flight began, its task)."""
        self._uncached_until: dict[K, float] = {}
        self.reads = 0
        """Reads started so far (tests count them)."""

    async def get(self, key: K) -> V:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            age = now - entry[0]
            if age <= self.max_age_s:
                if age > self.max_age_s / 2:
                    self._start(key, now)  # refresh ahead; this caller does not wait for it
                return entry[1]
        return await asyncio.shield(self._start(key, now))

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)  # the read runs on for its waiters; nobody new joins it
        self._uncached_until[key] = self._clock() + self.max_age_s

    def _start(self, key: K, now: float) -> asyncio.Task[V]:
        loop = asyncio.get_running_loop()
        running = self._loading.get(key)
        if running is not None:
            began, task = running
            if not task.done() and task.get_loop() is loop and now - began <= self.max_age_s:
                return task
        # In an empty context: the read is shared and may outlive the request that started
        # it, so it must not run inside that request's span or carry its context variables.
        task = loop.create_task(self._read(key), context=contextvars.Context())
        self._loading[key] = (now, task)
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _read(self, key: K) -> V:
        self.reads += 1
        began = self._clock()
        value = await self._load(key)
        running = self._loading.get(key)
        if running is not None and running[1] is asyncio.current_task():  # not forgotten
            self._store(key, value, began)
        return value

    def _store(self, key: K, value: V, read_at: float) -> None:
        until = self._uncached_until.get(key)
        if until is not None:
            if self._clock() < until:
                return
            del self._uncached_until[key]
        if self._remember(value):
            self._entries[key] = (read_at, value)
        else:
            self._entries.pop(key, None)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        running = self._loading.get(key)
        if running is not None and running[1] is task:
            del self._loading[key]
        if not task.cancelled() and task.exception() is not None:
            # Waiters got the error; a background refresh's error only leaves the old value
            # to expire (then the next caller's read raises it to that caller).
            log.warning("%s: reading %r failed: %r", self._name, key, task.exception())
