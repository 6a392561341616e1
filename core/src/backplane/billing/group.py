"""Group-committed usage: concurrent requests' metering written in one transaction.

For routes whose only database write is their usage (V2 inference): instead of a transaction
per request, one writer per process and event loop takes every request waiting to be metered,
and writes each tenant's share with one :meth:`UsageRecorder.record_many` and one commit. While
it writes, the next requests queue up and go together in the next round, so the cost per
request falls as load rises, and a request still goes on only once its usage is committed.

Hard limits stay exact: within a process the writer is the only one metering these requests,
one round at a time; across processes the counters' conditional updates hold as before. When a
tenant's group would cross a hard limit, the group is rolled back and its requests are metered
one by one, in arrival order, so exactly those that fit are admitted.

:meth:`UsageWriter.unlimited` tells a caller whether a round within the last ``unlimited_s``
seconds found no limit at all (soft or hard) on the tenant's meters: such usage cannot be
refused, so :meth:`UsageWriter.record_around` starts the caller's work while the usage commits and
returns once both are done (V2 inference uses it). A limit set since is honoured from the next
round on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane._contract import Meter
from backplane.billing.usage import QuotaExceeded, UsageItem, UsageRecorder, UsageResult
from backplane.db.tenancy import bind_tenant
from backplane.events import Events

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting:
    tenant_id: uuid.UUID
    items: list[UsageItem]
    future: asyncio.Future[list[UsageResult]]


class UsageWriter:
    """One per application; :meth:`record` from request handlers on the app's event loop."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        meters: dict[str, Meter],
        events: Events,
        max_requests: int = 512,
        unlimited_s: float = 0.0,
    ) -> None:
        self._sessions, self._meters, self._events = sessionmaker, meters, events
        self._max_requests, self._unlimited_s = max_requests, unlimited_s
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
        loop = asyncio.get_running_loop()
        waiting = _Waiting(tenant_id, list(items), loop.create_future())
        self._waiting.append(waiting)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await waiting.future

    async def record_around(
        self, tenant_id: uuid.UUID, items: Sequence[UsageItem], work: Coroutine[Any, Any, T]
    ) -> tuple[list[UsageResult], T]:
        """Meter ``items`` and do ``work``, returning both once the usage is committed.

        ``work`` starts only after the commit (so a refusal comes before it), except while
        :meth:`unlimited` holds for these meters: then both run at once, both are awaited to
        the end, and a refusal or a failed commit still wins over ``work``'s result."""
        if not self.unlimited(tenant_id, frozenset(i.code for i in items)):
            try:
                metered = await self.record(tenant_id, items)
            except BaseException:
                work.close()  # never started
                raise
            return metered, await work
        results = await asyncio.gather(self.record(tenant_id, items), work, return_exceptions=True)
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome
        metered, done = results
        return cast(list[UsageResult], metered), cast(T, done)

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_requests]
            del self._waiting[: self._max_requests]
            groups: dict[uuid.UUID, list[_Waiting]] = {}
            for waiting in batch:
                groups.setdefault(waiting.tenant_id, []).append(waiting)
            for tenant_id, group in groups.items():
                await self._write_group(tenant_id, group)

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

    async def _write(self, tenant_id: uuid.UUID, items: list[UsageItem]) -> list[UsageResult]:
        self.rounds += 1
        async with self._sessions() as session:
            bind_tenant(session, tenant_id)
            async with session.begin():
                return await UsageRecorder(session, self._meters, self._events).record_many(items)


def _succeed(waiting: _Waiting, results: list[UsageResult]) -> None:
    if not waiting.future.done():
        waiting.future.set_result(results)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.future.done():
        waiting.future.set_exception(exc)
