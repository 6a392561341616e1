"""Batches of usage events from external services (``POST /api/billing/events``).

One batch is one transaction and a handful of statements, whatever its size: a single
multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING transaction_id`` (the returned ids are the
new events; the rest were seen before), one counter update per (meter, period) of the new
events, one roll-up upsert and one distinct-values insert. Each event gets its own result:
``recorded``, ``duplicate`` or ``error`` with a message; a bad event never fails the batch.

Hard limits hold per event, in batch order: when a batch would cross a limit, the events that
still fit are kept and the rest are answered ``error`` (and removed again, so their ids may be
sent later), under the counter's row lock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import ADDITIVE
from backplane.billing.models import Entitlement, UsageCounter, UsageEvent
from backplane.billing.plan_models import Invoice
from backplane.billing.recording import (
    EventError,
    Recorded,
    add_to_counter,
    insert_for,
    notice_if_reached,
    resolve,
    summarise,
)
from backplane.billing.schemas import EventBatchOut, EventIn, EventResult
from backplane.billing.usage import period_bounds
from backplane.settings import BillingSettings

Pending = tuple[int, str, Recorded]
"""(position in the batch, transaction id, what it contributes)"""


async def record_batch(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    meters: dict[str, Meter],
    events: list[EventIn],
    settings: BillingSettings,
) -> EventBatchOut:
    now = datetime.now(UTC)
    results: list[EventResult | None] = [None] * len(events)
    closed = await _closed_periods(session, tenant_id, events, now)
    rows, pending, seen = [], [], set()
    for index, event in enumerate(events):
        tx = event.transaction_id
        if tx in seen:
            results[index] = EventResult(tx, "duplicate")
            continue
        seen.add(tx)
        try:
            meter, occurred = _check(event, meters, closed, now, settings)
            resolved = resolve(meter, event.value, event.properties or {})
        except EventError as exc:
            results[index] = EventResult(tx, "error", str(exc))
            continue
        rows.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "meter": meter.code,
                "transaction_id": tx,
                "value": resolved.value,
                "properties": event.properties or {},
                "occurred_at": occurred,
            }
        )
        pending.append((index, tx, Recorded(meter, occurred, resolved)))
    inserted: set[str] = set()
    if rows:
        statement = (
            insert_for(session)(UsageEvent)
            .on_conflict_do_nothing(index_elements=["tenant_id", "transaction_id"])
            .returning(UsageEvent.transaction_id)
        )
        connection = await session.connection()
        inserted = set((await connection.execute(statement, rows)).scalars().all())
    new: list[Pending] = []
    for item in pending:
        if item[1] in inserted:
            new.append(item)
        else:
            results[item[0]] = EventResult(item[1], "duplicate")
    refused = await _count(session, tenant_id, new)
    if refused:
        await session.execute(
            delete(UsageEvent).where(
                UsageEvent.tenant_id == tenant_id, UsageEvent.transaction_id.in_(list(refused))
            )
        )
    await summarise(session, tenant_id, [r for _, tx, r in new if tx not in refused])
    for index, tx, _ in new:
        message = refused.get(tx)
        results[index] = (
            EventResult(tx, "error", message) if message else EventResult(tx, "recorded")
        )
    final = [r for r in results if r is not None]
    return EventBatchOut(
        recorded=sum(r.status == "recorded" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        errors=sum(r.status == "error" for r in final),
        results=final,
    )


def _check(
    event: EventIn,
    meters: dict[str, Meter],
    closed: set[datetime],
    now: datetime,
    settings: BillingSettings,
) -> tuple[Meter, datetime]:
    meter = meters.get(event.code)
    if meter is None:
        raise EventError(f"no meter {event.code!r} is registered")
    occurred = _timestamp(event, now)
    if occurred > now + timedelta(seconds=settings.max_future_skew_s):
        raise EventError("timestamp is in the future")
    if period_bounds(occurred)[0] in closed:
        raise EventError(f"the period of {occurred:%Y-%m} is invoiced already")
    return meter, occurred


def _timestamp(event: EventIn, now: datetime) -> datetime:
    if event.timestamp is None:
        return now
    if event.timestamp.tzinfo is None:
        raise EventError("timestamp needs a time zone (e.g. 2026-11-25T10:00:00Z)")
    return event.timestamp.astimezone(UTC)


async def _closed_periods(
    session: AsyncSession, tenant_id: uuid.UUID, events: list[EventIn], now: datetime
) -> set[datetime]:
    """Periods, among those the batch's timestamps fall in, that already have an invoice."""
    current = period_bounds(now)[0]
    starts = {
        period_bounds(e.timestamp)[0]
        for e in events
        if e.timestamp is not None and e.timestamp.tzinfo is not None
    } - {current}
    if not starts:
        return set()
    found = await session.scalars(
        select(Invoice.period_start).where(
            Invoice.tenant_id == tenant_id, Invoice.period_start.in_(sorted(starts))
        )
    )
    return {period_bounds(p.replace(tzinfo=p.tzinfo or UTC))[0] for p in found}


async def _count(session: AsyncSession, tenant_id: uuid.UUID, new: list[Pending]) -> dict[str, str]:
    """Add new events of additive meters to their period counters; refused ids -> message."""
    groups: dict[tuple[str, datetime], list[Pending]] = defaultdict(list)
    for item in new:
        recorded = item[2]
        if recorded.meter.aggregation in ADDITIVE:
            groups[(recorded.meter.code, period_bounds(recorded.occurred_at)[0])].append(item)
    if not groups:
        return {}
    limits = {
        e.meter: e
        for e in await session.scalars(
            select(Entitlement).where(Entitlement.tenant_id == tenant_id)
        )
    }
    refused: dict[str, str] = {}
    for (code, start), items in sorted(groups.items()):
        entitlement = limits.get(code)
        limit = entitlement.limit if entitlement is not None and entitlement.hard else None
        total = sum(r.resolved.value for _, _, r in items)
        used = await add_to_counter(session, tenant_id, code, start, total, limit)
        if used is None and limit is None:
            raise RuntimeError(f"could not add usage of {code} to its counter")
        if used is None and limit is not None:
            used, kept = await _fit(session, tenant_id, code, start, limit, items)
            end = period_bounds(start)[1]
            for _, tx, _r in items[kept:]:
                refused[tx] = (
                    f"quota for {code} spent: limit {limit:g} until {end:%Y-%m-%dT%H:%M:%SZ}"
                )
        if used is not None and entitlement is not None:
            await notice_if_reached(
                session,
                tenant_id,
                code,
                period_bounds(start),
                entitlement.limit,
                entitlement.hard,
                used,
            )
    return refused


async def _fit(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    code: str,
    start: datetime,
    limit: float,
    items: list[Pending],
) -> tuple[float | None, int]:
    """Keep the longest prefix of ``items`` that fits under ``limit`` (counter row locked)."""
    for _ in range(5):
        query = select(UsageCounter.value).where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.meter == code,
            UsageCounter.period_start == start,
        )
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update()
        current = float(await session.scalar(query) or 0)
        kept, total = 0, 0.0
        for _, _, recorded in items:
            if current + total + recorded.resolved.value > limit:
                break
            total += recorded.resolved.value
            kept += 1
        if kept == 0:
            return None, 0
        used = await add_to_counter(session, tenant_id, code, start, total, limit)
        if used is not None:
            return used, kept
    return None, 0
