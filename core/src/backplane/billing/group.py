"""Group-committed usage: concurrent requests' metering written in one transaction.

For routes whose only database write is their usage (V2 inference): instead of a transaction
per request, one writer per process and event loop takes every request waiting to be metered,
and writes each tenant's share with one :meth:`UsageRecorder.record_many` and one commit. While
it writes, the next requests queue up and go together in the next round, so the cost per
request falls as load rises.

Hard limits stay exact: a request of a tenant with a limit goes on only once its usage is
committed; within a process the writer is the only one metering these requests, one round at a
time; across processes the counters' conditional updates hold as before. When a tenant's group
would cross a hard limit, the group is rolled back and its requests are metered one by one, in
arrival order, so exactly those that fit are admitted.

:meth:`UsageWriter.unlimited` tells a caller whether a round within the last ``unlimited_s``
seconds found no limit at all (soft or hard) on the tenant's meters: such usage cannot be
refused, so :meth:`UsageWriter.record_around` does not make the request wait for it. The usage
is queued (:meth:`UsageWriter.defer`) and committed by a round at most ``flush_s`` later,
together with whatever else arrived meanwhile, so a request of such a tenant costs no database
round trip of its own. What that trades: a crash of the process loses at most the usage of the
last ``flush_s`` (plus any round still retrying while the database is down; the queue is
bounded by ``max_deferred``, beyond which requests wait for their commit again); a shutdown
commits everything queued. A limit set since is honoured from the next round on; usage
already served is counted even past a new hard limit (it must be billed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane._contract import Meter
from backplane.billing.usage import QuotaExceeded, UsageItem, UsageRecorder, UsageResult
from backplane.db.tenancy import bind_tenant
from backplane.events import Events

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_RETRY_S = 1.0
"""The longest pause between two attempts at deferred usage while the database fails."""


@dataclass(slots=True)
class _Waiting:
    tenant_id: uuid.UUID
    items: list[UsageItem]
    future: asyncio.Future[list[UsageResult]] | None
    """None: deferred usage of work already served; nobody waits for its commit."""


class UsageWriter:
    """One per application; :meth:`record` from request handlers on the app's event loop."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        meters: dict[str, Meter],
        events: Events,
        max_requests: int = 512,
        unlimited_s: float = 0.0,
        flush_s: float = 0.01,
        max_deferred: int = 10_000,
    ) -> None:
        self._sessions, self._meters, self._events = sessionmaker, meters, events
        self._max_requests, self._unlimited_s = max_requests, unlimited_s
        self._flush_s, self._max_deferred = flush_s, max_deferred
        self._deferred = 0
        """Deferred requests queued and not committed yet."""
        self._urgent = asyncio.Event()
        """Set when a caller waits for a commit: the round starts without the deferral pause."""
        self._retry_s = 0.0
        self._unlimited: dict[tuple[uuid.UUID, frozenset[str]], float] = {}
        """(tenant, meter codes) -> until when a round's "no limit on these" is trusted."""
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        """Transactions written so far (a test and a benchmark read it)."""

    def unlimited(self, tenant_id: uuid.UUID, codes: frozenset[str]) -> bool:
        """Whether a recent round saw no limit on any of ``codes`` for ``tenant_id``."""
        until = self._unlimited.get((tenant_id, codes))
        return until is not None and until > time.monotonic()

    def _learn(
        self, tenant_id: uuid.UUID, group: list[_Waiting], results: list[UsageResult]
    ) -> None:
        if self._unlimited_s <= 0:
            return
        for codes in {frozenset(i.code for i in w.items) for w in group}:
            if all(r.recorded and r.limit is None for r in results if r.meter in codes):
                self._unlimited[tenant_id, codes] = time.monotonic() + self._unlimited_s
            else:
                self._unlimited.pop((tenant_id, codes), None)

    async def record(self, tenant_id: uuid.UUID, items: Sequence[UsageItem]) -> list[UsageResult]:
        """Meter ``items`` for ``tenant_id``, committed; :class:`QuotaExceeded` if refused."""
        future: asyncio.Future[list[UsageResult]] = asyncio.get_running_loop().create_future()
        self._queue(_Waiting(tenant_id, list(items), future))
        return await future

    def defer(self, tenant_id: uuid.UUID, items: Sequence[UsageItem]) -> bool:
        """Queue the usage of work that is served whatever it says (no limit can refuse it),
        to be committed within ``flush_s``; False when ``max_deferred`` requests' usage is
        already waiting (the caller then waits for a commit with :meth:`record`)."""
        if self._deferred >= self._max_deferred:
            return False
        self._deferred += 1
        self._queue(_Waiting(tenant_id, list(items), None))
        return True

    async def record_around(
        self, tenant_id: uuid.UUID, items: Sequence[UsageItem], work: Coroutine[Any, Any, T]
    ) -> tuple[list[UsageResult], T]:
        """Meter ``items`` and do ``work``.

        ``work`` starts only after the usage is committed (so a refusal comes before it),
        except while :meth:`unlimited` holds for these meters: then the usage is deferred
        (:meth:`defer`) and ``work`` starts at once; its results are then empty (no limit,
        so nothing for quota headers)."""
        if self.unlimited(tenant_id, frozenset(i.code for i in items)) and self.defer(
            tenant_id, items
        ):
            return [], await work
        try:
            metered = await self.record(tenant_id, items)
        except BaseException:
            work.close()  # never started
            raise
        return metered, await work

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Commit everything queued (at shutdown); what cannot be committed within
        ``timeout_s`` is logged as lost, and the writer stops retrying it (the database is
        closed next)."""
        if self._task is None or self._task.done():
            return
        self._urgent.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        if self._deferred:
            self._task.cancel()
            log.error(
                "usage of %d served requests could not be committed and is lost", self._deferred
            )

    def _queue(self, waiting: _Waiting) -> None:
        self._waiting.append(waiting)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._urgent = asyncio.Event()  # an event belongs to the loop that first awaits it
            self._task = loop.create_task(self._drain())
        if waiting.future is not None:
            self._urgent.set()

    async def _drain(self) -> None:
        while self._waiting:
            pause = self._retry_s or (0.0 if self._urgent.is_set() else self._flush_s)
            if pause:  # let deferred usage gather (a waiting caller cuts it short)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), pause)
            self._urgent.clear()
            batch = self._waiting[: self._max_requests]
            del self._waiting[: self._max_requests]
            groups: dict[uuid.UUID, list[_Waiting]] = {}
            for waiting in batch:
                groups.setdefault(waiting.tenant_id, []).append(waiting)
            for tenant_id, group in groups.items():
                deferred = [w for w in group if w.future is None]
                if deferred:
                    await self._write_deferred(tenant_id, deferred)
                if len(deferred) < len(group):
                    await self._write_group(tenant_id, [w for w in group if w.future])

    async def _write_deferred(self, tenant_id: uuid.UUID, group: list[_Waiting]) -> None:
        """Count served work's usage (past any hard limit set since); on failure keep it queued
        and try again, pausing longer each time up to ``MAX_RETRY_S``."""
        try:
            items = [i for w in group for i in w.items]
            results = await self._write(tenant_id, items, enforce_limits=False)
        except Exception:  # kept for the next attempt
            if not self._retry_s:
                log.exception("committing deferred usage failed; retrying until it succeeds")
            self._retry_s = min(MAX_RETRY_S, max(self._flush_s, self._retry_s * 2, 0.01))
            self._waiting[:0] = group
            return
        if self._retry_s:
            log.warning("deferred usage committed again")
            self._retry_s = 0.0
        self._deferred -= len(group)
        self._learn(tenant_id, group, results)

    async def _write_group(self, tenant_id: uuid.UUID, group: list[_Waiting]) -> None:
        try:
            results = await self._write(tenant_id, [i for w in group for i in w.items])
        except QuotaExceeded as refused:
            self._unlimited = {k: t for k, t in self._unlimited.items() if k[0] != tenant_id}
            if len(group) == 1:
                _fail(group[0], refused)
                return
            for waiting in group:  # near the limit: admit exactly those that fit
                try:
                    _succeed(waiting, await self._write(tenant_id, waiting.items))
                except Exception as exc:  # noqa: BLE001 - handed to that request
                    _fail(waiting, exc)
            return
        except Exception as exc:  # noqa: BLE001 - handed to every request of the group
            for waiting in group:
                _fail(waiting, exc)
            return
        self._learn(tenant_id, group, results)
        start = 0
        for waiting in group:
            _succeed(waiting, results[start : start + len(waiting.items)])
            start += len(waiting.items)

    async def _write(
        self, tenant_id: uuid.UUID, items: list[UsageItem], enforce_limits: bool = True
    ) -> list[UsageResult]:
        self.rounds += 1
        async with self._sessions() as session:
            bind_tenant(session, tenant_id)
            async with session.begin():
                recorder = UsageRecorder(session, self._meters, self._events)
                return await recorder.record_many(items, enforce_limits=enforce_limits)


def _succeed(waiting: _Waiting, results: list[UsageResult]) -> None:
    if waiting.future is not None and not waiting.future.done():
        waiting.future.set_result(results)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if waiting.future is not None and not waiting.future.done():
        waiting.future.set_exception(exc)
