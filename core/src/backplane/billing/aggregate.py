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
    hours = (_ceil(start, HOUR, hour_of), hour_of(end))
    if meter.aggregation == "unique_count":
        days = (_ceil(start, DAY, day_of), day_of(end))
        whole = days[0] < days[1]
        edges = [(start, days[0]), (days[1], end)] if whole else [(start, end)]
        if whole:
            rows = await session.execute(
                select(UsageDistinct.group_key, UsageDistinct.value).where(
                    UsageDistinct.tenant_id == tenant_id,
                    UsageDistinct.meter == meter.code,
                    UsageDistinct.day >= days[0],
                    UsageDistinct.day < days[1],
                )
            )
            for group, value in rows.tuples():
                usage.groups[group].values.add(value)
                usage.total.values.add(value)
    else:
        whole = hours[0] < hours[1]
        edges = [(start, hours[0]), (hours[1], end)] if whole else [(start, end)]
        if whole:
            rollups = await session.execute(
                select(
                    UsageRollup.group_key,
                    UsageRollup.count,
                    UsageRollup.total,
                    UsageRollup.maximum,
                    UsageRollup.latest,
                    UsageRollup.latest_at,
                ).where(
                    UsageRollup.tenant_id == tenant_id,
                    UsageRollup.meter == meter.code,
                    UsageRollup.hour >= hours[0],
                    UsageRollup.hour < hours[1],
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
    rows = await session.execute(
        select(UsageEvent.value, UsageEvent.properties, UsageEvent.occurred_at).where(
            UsageEvent.tenant_id == tenant_id,
            UsageEvent.meter == meter.code,
            UsageEvent.occurred_at >= start,
            UsageEvent.occurred_at < end,
        )
    )
    for value, properties, occurred in rows.tuples():
        try:
            resolved = resolve(meter, value, properties or {})
        except EventError:
            continue  # recorded before the meter changed shape: not countable now
        at = utc(occurred)
        folds = (usage.groups[resolved.group_key], usage.total)
        for fold in folds:
            if resolved.distinct is not None:
                fold.values.add(resolved.distinct)
            fold.add(1, resolved.value, resolved.value, resolved.value, at)


async def distinct_counts(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[tuple[str, datetime], int]]:
    """``unique_count`` over a day-aligned window, counted by the database: per meter, per
    (meter, group) and per (meter, day), without fetching the values."""
    base = (
        UsageDistinct.tenant_id == tenant_id,
        UsageDistinct.day >= start,
        UsageDistinct.day < end,
    )
    distinct = func.count(UsageDistinct.value.distinct())
    totals = await session.execute(
        select(UsageDistinct.meter, distinct).where(*base).group_by(UsageDistinct.meter)
    )
    groups = await session.execute(
        select(UsageDistinct.meter, UsageDistinct.group_key, distinct)
        .where(*base)
        .group_by(UsageDistinct.meter, UsageDistinct.group_key)
    )
    days = await session.execute(
        select(UsageDistinct.meter, UsageDistinct.day, distinct)
        .where(*base)
        .group_by(UsageDistinct.meter, UsageDistinct.day)
    )
    return (
        {m: int(n) for m, n in totals.tuples()},
        {(m, g): int(n) for m, g, n in groups.tuples()},
        {(m, utc(d)): int(n) for m, d, n in days.tuples()},
    )


@dataclass
class MeterReport:
    total: Fold = field(default_factory=Fold)
    groups: dict[str, Fold] = field(default_factory=lambda: defaultdict(Fold))
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
        moment = utc(when) if isinstance(when, datetime) else datetime.fromisoformat(when)
        reports[meter].days[day_of(utc(moment))].add(int(count), float(total), maximum, None, None)
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
                    when = (
                        utc(found) if isinstance(found, datetime) else datetime.fromisoformat(found)
                    )
                    report.days[day_of(utc(when))].add(0, 0.0, None, value, stamp)
                else:
                    report.groups[found].add(0, 0.0, None, value, stamp)
                    report.total.add(0, 0.0, None, value, stamp)
    return reports
