"""Aggregating usage over a time window: roll-ups for whole hours, raw events for the edges.

``count`` and ``sum`` add up, ``max`` takes the largest value, ``latest`` the value of the last
event (by its timestamp), ``unique_count`` the number of distinct values of the meter's property.
Each is computed per group (the meter's ``group_by`` values) and over all groups; a window with
no events aggregates to 0.

A window aligned to hours (a current-period read) touches only roll-ups, whatever the number of
events. A subscription segment starting at 14:23 reads raw events for 14:23-15:00 only.
``unique_count`` uses the daily distinct sets for whole days and raw events for partial days.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.models import UsageDistinct, UsageEvent, UsageRollup, utc
from backplane.billing.recording import EventError, day_of, hour_of, resolve

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@dataclass
class Fold:
    """A running aggregate of one meter in one group (or over all groups)."""

    count: int = 0
    total: float = 0.0
    maximum: float | None = None
    latest: float | None = None
    latest_at: datetime | None = None
    values: set[str] = field(default_factory=set)

    def add(
        self,
        count: int,
        total: float,
        maximum: float | None,
        latest: float | None,
        at: datetime | None,
    ) -> None:
        self.count += count
        self.total += total
        if maximum is not None and (self.maximum is None or maximum > self.maximum):
            self.maximum = maximum
        if at is not None and (self.latest_at is None or at >= self.latest_at):
            self.latest, self.latest_at = latest, at

    def value(self, aggregation: str) -> float:
        if aggregation == "count":
            return float(self.count)
        if aggregation == "sum":
            return self.total
        if aggregation == "max":
            return self.maximum or 0.0
        if aggregation == "latest":
            return self.latest or 0.0
        return float(len(self.values))


@dataclass
class WindowUsage:
    total: Fold = field(default_factory=Fold)
    groups: dict[str, Fold] = field(default_factory=lambda: defaultdict(Fold))


def _ceil(moment: datetime, step: timedelta, floor: Any) -> datetime:
    base: datetime = floor(moment)
    return base if base == moment else base + step


async def window_usage(
    session: AsyncSession, tenant_id: uuid.UUID, meter: Meter, start: datetime, end: datetime
) -> WindowUsage:
    """Usage of ``meter`` over ``[start, end)``, exact at any boundary."""
    usage = WindowUsage()
    unique = meter.aggregation == "unique_count"
    step, floor = (DAY, day_of) if unique else (HOUR, hour_of)
    first, last = _ceil(start, step, floor), floor(end)
    whole = first < last
    edges = [(start, first), (last, end)] if whole else [(start, end)]
    d, r = UsageDistinct, UsageRollup
    if whole and unique:
        rows = await session.execute(
            select(d.group_key, d.value).where(
                d.tenant_id == tenant_id, d.meter == meter.code, d.day >= first, d.day < last
            )
        )
        for group, value in rows.tuples():
            usage.groups[group].values.add(value)
            usage.total.values.add(value)
    elif whole:
        rollups = await session.execute(
            select(r.group_key, r.count, r.total, r.maximum, r.latest, r.latest_at).where(
                r.tenant_id == tenant_id, r.meter == meter.code, r.hour >= first, r.hour < last
            )
        )
        for group, count, total, maximum, latest, at in rollups.tuples():
            stamp = utc(at) if at is not None else None
            usage.groups[group].add(count, total, maximum, latest, stamp)
            usage.total.add(count, total, maximum, latest, stamp)
    for edge_start, edge_end in edges:
        if edge_start < edge_end:
            await _raw(session, tenant_id, meter, edge_start, edge_end, usage)
    return usage


async def _raw(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    meter: Meter,
    start: datetime,
    end: datetime,
    usage: WindowUsage,
) -> None:
    e = UsageEvent
    rows = await session.execute(
        select(e.value, e.properties, e.occurred_at).where(
            e.tenant_id == tenant_id,
            e.meter == meter.code,
            e.occurred_at >= start,
            e.occurred_at < end,
        )
    )
    for value, properties, occurred in rows.tuples():
        try:
            resolved = resolve(meter, value, properties or {})
        except EventError:
            continue  # recorded before the meter changed shape: not countable now
        at = utc(occurred)
        for fold in (usage.groups[resolved.group_key], usage.total):
            if resolved.distinct is not None:
                fold.values.add(resolved.distinct)
            fold.add(1, resolved.value, resolved.value, resolved.value, at)


async def distinct_counts(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, datetime], int]]:
    """``unique_count`` over a day-aligned window, counted by the database: per meter, per
    (meter, group) and per (meter, day), without fetching the values."""
    d = UsageDistinct
    base = (d.tenant_id == tenant_id, d.day >= start, d.day < end)
    distinct = func.count(d.value.distinct())

    async def counts(*keys: Any) -> list[Any]:
        rows = await session.execute(select(*keys, distinct).where(*base).group_by(*keys))
        return list(rows.tuples())

    return (
        {m: int(n) for m, n in await counts(d.meter)},
        {(m, g): int(n) for m, g, n in await counts(d.meter, d.group_key)},
        {(m, utc(day)): int(n) for m, day, n in await counts(d.meter, d.day)},
    )


@dataclass
class MeterReport(WindowUsage):
    days: dict[datetime, Fold] = field(default_factory=lambda: defaultdict(Fold))


async def period_report(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    start: datetime,
    end: datetime,
    latest_meters: frozenset[str] = frozenset(),
) -> dict[str, MeterReport]:
    """Every meter's usage over an hour-aligned window (a billing period) from roll-ups only:
    per meter, per group and per day, grouped by the database (two small result sets whatever
    the number of events; the roll-ups of ``latest_meters`` are folded here, for their order)."""
    reports: dict[str, MeterReport] = defaultdict(MeterReport)
    r = UsageRollup
    window = (r.tenant_id == tenant_id, r.hour >= start, r.hour < end)
    sums = (func.sum(r.count), func.sum(r.total), func.max(r.maximum))
    postgres = session.bind.dialect.name == "postgresql"
    day = func.date_trunc("day", r.hour, "UTC") if postgres else func.substr(r.hour, 1, 10)
    groups = await session.execute(
        select(r.meter, r.group_key, *sums).where(*window).group_by(r.meter, r.group_key)
    )
    for meter, group, count, total, maximum in groups.tuples():
        report = reports[meter]
        for fold in (report.total, report.groups[group]):
            fold.add(int(count), float(total), maximum, None, None)
    days = await session.execute(select(r.meter, day, *sums).where(*window).group_by(r.meter, day))
    for meter, when, count, total, maximum in days.tuples():
        reports[meter].days[_day(when)].add(int(count), float(total), maximum, None, None)
    if latest_meters:
        # The row holding the last value per (meter, group) and per (meter, day): a join on
        # the grouped maximum of ``latest_at``, so only those rows leave the database.
        latest = (*window, r.meter.in_(sorted(latest_meters)))
        for key, into_days in ((r.group_key, False), (day, True)):
            last = (
                select(r.meter.label("m"), key.label("k"), func.max(r.latest_at).label("at"))
                .where(*latest)
                .group_by(r.meter, key)
                .subquery()
            )
            rows = await session.execute(
                select(r.meter, key, r.latest, r.latest_at)
                .join(last, (last.c.m == r.meter) & (last.c.k == key) & (last.c.at == r.latest_at))
                .where(*latest)
            )
            for meter, found, value, at in rows.tuples():
                report, stamp = reports[meter], utc(at)
                if into_days:
                    report.days[_day(found)].add(0, 0.0, None, value, stamp)
                else:
                    report.groups[found].add(0, 0.0, None, value, stamp)
                    report.total.add(0, 0.0, None, value, stamp)
    return reports


def _day(value: datetime | str) -> datetime:
    """A day as the database grouped it (PostgreSQL: a datetime; SQLite: ``YYYY-MM-DD``)."""
    return day_of(utc(value if isinstance(value, datetime) else datetime.fromisoformat(value)))
