"""Batches of usage events from external services (``POST /api/billing/events``).

The events API's own rules (a time zone on every timestamp, none too far in the future, none
in a period that is invoiced already), then one :meth:`UsageRecorder.record_many` in
``partial`` mode, the path every other use is metered on: a handful of statements whatever
the batch's size, and each event its own result, ``recorded``, ``duplicate`` or ``error`` with
a message. A bad event never fails the batch; events past a hard limit, in batch order, are
answered ``error`` and the ones that still fit are kept.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.plan_models import Invoice
from backplane.billing.recording import EventError
from backplane.billing.schemas import EventBatchOut, EventIn, EventResult
from backplane.billing.usage import UsageItem, UsageRecorder, period_bounds
from backplane.settings import BillingSettings


async def record_batch(
    usage: UsageRecorder, tenant_id: uuid.UUID, events: list[EventIn], settings: BillingSettings
) -> EventBatchOut:
    now = datetime.now(UTC)
    results: list[EventResult | None] = [None] * len(events)
    closed = await _closed_periods(usage.session, tenant_id, events, now)
    items: list[UsageItem] = []
    positions: list[int] = []
    seen: set[str] = set()
    for index, event in enumerate(events):
        tx = event.transaction_id
        if tx in seen:
            results[index] = EventResult(tx, "duplicate")
            continue
        seen.add(tx)
        try:
            occurred = _check(event, closed, now, settings)
        except EventError as exc:
            results[index] = EventResult(tx, "error", str(exc))
            continue
        value = 1.0 if event.value is None else event.value
        items.append(UsageItem(event.code, value, event.properties, tx, occurred))
        positions.append(index)
    outcomes = await usage.record_many(items, partial=True)
    for index, item, outcome in zip(positions, items, outcomes, strict=True):
        tx = item.transaction_id or ""
        if outcome.error is not None:
            results[index] = EventResult(tx, "error", outcome.error)
        else:
            results[index] = EventResult(tx, "recorded" if outcome.recorded else "duplicate")
    final = [r for r in results if r is not None]
    counts = Counter(r.status for r in final)
    return EventBatchOut(counts["recorded"], counts["duplicate"], counts["error"], final)


def _check(
    event: EventIn, closed: set[datetime], now: datetime, settings: BillingSettings
) -> datetime:
    if event.timestamp is None:
        return now
    if event.timestamp.tzinfo is None:
        raise EventError("timestamp needs a time zone (e.g. 2026-11-25T10:00:00Z)")
    occurred = event.timestamp.astimezone(UTC)
    if occurred > now + timedelta(seconds=settings.max_future_skew_s):
        raise EventError("timestamp is in the future")
    if period_bounds(occurred)[0] in closed:
        raise EventError(f"the period of {occurred:%Y-%m} is invoiced already")
    return occurred


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
    return {period_bounds(p)[0] for p in found}
