"""Recording usage in the caller's transaction, idempotently, with hard quotas held atomically.

``UsageRecorder.record_many`` (and ``record``, a batch of one) inserts the events with one
multi-row ``INSERT ... ON CONFLICT DO NOTHING`` on ``(tenant_id, transaction_id)`` (a repeated
id is ignored, even concurrently), reads the tenant's limits on the batch's meters in one
``SELECT``, adds each additive meter's share to the period's counter with one conditional
``UPDATE ... WHERE value + :v <= :limit`` when the tenant has a hard limit on the meter, then
adds the new events to the hourly roll-ups in one upsert (:mod:`backplane.billing.recording`).
Every write belongs to the caller's transaction: usage commits exactly when the business action
does, and a refused request leaves nothing once the caller rolls back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import ADDITIVE
from backplane.billing.recording import (
    Limit,
    Recorded,
    add_to_counter,
    counter_value,
    entitlements_for,
    insert_events,
    notice_if_reached,
    resolve,
    summarise,
)
from backplane.db.tenancy import session_tenant


class UnknownMeterError(LookupError):
    """No plugin registered a meter with this code."""


class QuotaExceeded(Exception):  # noqa: N818 - named for what the client sees (HTTP 429)
    """A hard limit would be crossed; nothing of the request is kept."""

    def __init__(self, meter: str, limit: float, used: float, reset_at: datetime) -> None:
        super().__init__(
            f"quota for {meter} spent: {used:g} of {limit:g} until {reset_at:%Y-%m-%dT%H:%M:%SZ}"
        )
        self.meter, self.limit, self.used, self.reset_at = meter, limit, used, reset_at


class UsageResult(msgspec.Struct, frozen=True):
    recorded: bool
    """False when ``transaction_id`` was recorded before (the value was not counted again)."""
    meter: str
    limit: float | None = None
    used: float | None = None
    reset_at: datetime | None = None


class UsageItem(msgspec.Struct, frozen=True):
    """One use for :meth:`UsageRecorder.record_many`: the arguments of one ``record`` call, so
    that a handler metering several things per request pays for one batch of statements."""

    code: str
    value: float = 1
    properties: dict[str, Any] | None = None
    transaction_id: str | None = None
    """Idempotency key per tenant (a fresh one when None: every call counts)."""
    occurred_at: datetime | None = None
    """When the use happened (now when None); decides the period and the roll-up hour."""


def period_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar-month billing period (UTC) containing ``moment``."""
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


class UsageRecorder:
    """Injected into handlers as ``usage``; bound to the request's tenant-scoped session."""

    def __init__(
        self,
        session: AsyncSession,
        meters: dict[str, Meter],
        results: list[UsageResult] | None = None,
    ) -> None:
        self.session = session
        self.meters = meters
        self.results: list[UsageResult] = [] if results is None else results
        """What this request recorded (the app turns limits into response headers)."""

    async def record(
        self,
        code: str,
        value: float = 1,
        *,
        transaction_id: str | None = None,
        properties: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> UsageResult:
        """Record one use (a batch of one, so both entry points share every rule)."""
        item = UsageItem(code, value, properties, transaction_id, occurred_at)
        return (await self.record_many([item]))[0]

    async def record_many(self, items: Sequence[UsageItem]) -> list[UsageResult]:
        """Record ``items`` as if by one ``record`` call each, in order, in a few statements.

        The results, the idempotency (a transaction id seen before, or earlier in the batch,
        is not counted again), :class:`QuotaExceeded` (for the first item in batch order that
        would cross a hard limit, with the usage it would have seen), ``self.results`` and
        the ``quota.reached`` notice are those of the one-by-one calls. Every item is checked
        before anything is written, so an invalid item leaves the transaction untouched; after
        :class:`QuotaExceeded` the caller rolls back, as after ``record``.
        """
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        recorded: list[Recorded] = []
        for item in items:
            meter = self.meters.get(item.code)
            if meter is None:
                raise UnknownMeterError(f"no meter {item.code!r} is registered")
            if item.value < 0:
                raise ValueError("usage values cannot be negative")
            properties = item.properties or {}
            resolved = resolve(meter, item.value, properties)  # EventError is a ValueError
            occurred = (item.occurred_at or now).astimezone(UTC)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "meter": item.code,
                    "transaction_id": item.transaction_id or uuid.uuid4().hex,
                    "value": resolved.value,
                    "properties": properties,
                    "occurred_at": occurred,
                }
            )
            recorded.append(Recorded(meter, occurred, resolved))
        if not rows:
            return []
        tenant_id = session_tenant(self.session)
        if tenant_id is None:
            raise PermissionError("usage can only be recorded for a tenant")
        fresh, seen = [], set()  # an id repeated within the batch is a duplicate too
        for position, row in enumerate(rows):
            row["tenant_id"] = tenant_id
            if row["transaction_id"] not in seen:
                seen.add(row["transaction_id"])
                fresh.append(position)
        inserted = await insert_events(self.session, [rows[i] for i in fresh])
        new = [i for i in fresh if rows[i]["transaction_id"] in inserted]
        results = [UsageResult(recorded=False, meter=row["meter"]) for row in rows]
        for i in new:
            results[i] = UsageResult(recorded=True, meter=rows[i]["meter"])
        await self._count(tenant_id, [(i, recorded[i]) for i in new], results)
        await summarise(self.session, tenant_id, [recorded[i] for i in new])
        return results

    async def _count(
        self, tenant_id: uuid.UUID, new: list[tuple[int, Recorded]], results: list[UsageResult]
    ) -> None:
        """Add the new events of additive meters to their period counters: one conditional
        ``UPDATE`` per (meter, period), in sorted order so that concurrent batches queue on
        the same rows instead of deadlocking, each held by the tenant's hard limit.

        The results (and ``QuotaExceeded``) carry the running totals one call per event would
        have seen, so headers and 429 bodies do not depend on how the events were batched.
        """
        groups: dict[tuple[str, datetime], list[int]] = {}
        for position, event in new:
            if event.meter.aggregation in ADDITIVE:
                key = (event.meter.code, period_bounds(event.occurred_at)[0])
                groups.setdefault(key, []).append(position)
        if not groups:
            return
        values = {position: event.resolved.value for position, event in new}
        limits = await entitlements_for(self.session, tenant_id, sorted({c for c, _ in groups}))
        refusal: tuple[int, QuotaExceeded] | None = None
        notices: list[tuple[str, tuple[datetime, datetime], Limit, list[float]]] = []
        for (code, start), positions in sorted(groups.items()):
            period = period_bounds(start)
            entitlement = limits.get(code)
            hard = entitlement.limit if entitlement is not None and entitlement.hard else None
            added = [values[p] for p in positions]
            total = sum(added)
            used = await add_to_counter(self.session, tenant_id, code, start, total, hard)
            if used is None:
                if hard is None:
                    raise RuntimeError(f"could not add usage of {code} to its counter")
                # The item one call per item would have stopped at, and the usage it would
                # have seen (the first item when none crosses: the counter moved meanwhile).
                before = await counter_value(self.session, tenant_id, code, start)
                totals = running_totals(before, added)
                stop = next((i for i, t in enumerate(totals) if t > hard), 0)
                if refusal is None or positions[stop] < refusal[0]:
                    seen = totals[stop - 1] if stop else before
                    refusal = (positions[stop], QuotaExceeded(code, hard, seen, period[1]))
                totals = totals[:stop]
            else:
                totals = running_totals(used - total, added)
                totals[-1] = used  # exactly what the database holds
                if entitlement is not None:
                    notices.append((code, period, entitlement, totals))
            for position, so_far in zip(positions, totals, strict=False):
                results[position] = UsageResult(
                    recorded=True,
                    meter=code,
                    limit=entitlement.limit if entitlement is not None else None,
                    used=so_far,
                    reset_at=period[1],
                )
        counted = sorted(p for positions in groups.values() for p in positions)
        if refusal is not None:  # the caller rolls back: the counters above go with it
            self.results.extend(results[p] for p in counted if p < refusal[0])
            raise refusal[1]
        for code, period, entitlement, totals in notices:
            # The total a one-by-one call first reached the limit with (the notice reports it).
            reached = next((t for t in totals if t >= entitlement.limit), totals[-1])
            await notice_if_reached(
                self.session, tenant_id, code, period, entitlement.limit, entitlement.hard, reached
            )
        self.results.extend(results[p] for p in counted)


def running_totals(start: float, values: list[float]) -> list[float]:
    """The counter after each value, as adding them one by one would leave it."""
    totals, current = [], start
    for value in values:
        current += value
        totals.append(current)
    return totals
