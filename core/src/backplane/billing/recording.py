"""The writes behind every recorded event, shared by the injected recorder and the events API.

For each batch of newly inserted events (``UsageRecorder.record_many``, of which ``record`` is
a batch of one, and ``POST /api/billing/events``): the period counters of additive meters (hard
limits held by one conditional ``UPDATE``), the hourly roll-ups (one upsert), the daily
distinct-value sets of ``unique_count`` meters, and the once-per-period ``quota.reached``
notice. All in the caller's transaction, so the summaries commit exactly with the events they
summarise, and rows are always touched in sorted key order (concurrent batches queue on the
same rows instead of deadlocking).

The statements are Core statements run on the session's connection, each compiled once per
process (see :func:`cached_insert`): on the inference path, building and compiling a statement
through the ORM used to cost more than the database spent running it. Each names ``tenant_id``
itself (what the ORM's tenant criteria would add; row-level security still applies on
PostgreSQL) and reads none of the session's pending objects, so nothing needs flushing first.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import bindparam, case, delete, lambda_stmt, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.lambdas import StatementLambdaElement

from backplane._contract import Meter
from backplane.billing.models import (
    Entitlement,
    QuotaNotice,
    UsageCounter,
    UsageDistinct,
    UsageEvent,
    UsageRollup,
)
from backplane.events import Events

MAX_DISTINCT_LENGTH = 200
MAX_GROUP_KEY_LENGTH = 500


class EventError(ValueError):
    """An event cannot be recorded as given (unknown meter, missing property, ...)."""


def insert_for(session: AsyncSession) -> Any:
    """The dialect's ``INSERT`` (both support ``ON CONFLICT`` and ``RETURNING``)."""
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


def cached_insert(session: AsyncSession, build: Callable[[Any], Any]) -> StatementLambdaElement:
    """``build(insert_for(session))``, compiled once per dialect instead of once per call.

    SQLAlchemy 2.0 never caches the compiled form of the dialects' ``INSERT`` constructs
    (their ``ON CONFLICT`` clauses have no cache key). A lambda statement's cache key is its
    code plus the functions it closes over, so each ``build`` is compiled once per dialect and
    process. ``build`` must be a module-level function whose statement depends on nothing but
    the ``insert`` it is given; the rows go in as execution parameters, never into the statement.
    """
    insert = insert_for(session)
    return lambda_stmt(lambda: build(insert))


# Built once with named parameters: building and hashing a statement per call costs more
# Python time than the database spends running it.
_LIMITS = select(Entitlement.meter, Entitlement.limit, Entitlement.hard).where(
    Entitlement.tenant_id == bindparam("tenant"),
    Entitlement.meter.in_(bindparam("codes", expanding=True)),
)
_COUNTER_ROW = (
    UsageCounter.tenant_id == bindparam("tenant"),
    UsageCounter.meter == bindparam("code"),
    UsageCounter.period_start == bindparam("start"),
)
_COUNTER = select(UsageCounter.value).where(*_COUNTER_ROW)
_ADD = (
    update(UsageCounter)
    .where(*_COUNTER_ROW)
    .values(value=UsageCounter.value + bindparam("amount"))
    .returning(UsageCounter.value)
)
_ADD_WITHIN = _ADD.where(UsageCounter.value + bindparam("amount") <= bindparam("ceiling"))


@dataclass(frozen=True, slots=True)
class Resolved:
    value: float
    group_key: str
    distinct: str | None


def resolve(meter: Meter, value: float | None, properties: dict[str, Any]) -> Resolved:
    """Apply the meter's definition to one event.

    ``count`` counts 1 per event. ``sum``, ``max`` and ``latest`` take ``properties[property]``
    when the meter names a property and the event carries it, else ``value`` (1 by default).
    ``unique_count`` counts distinct ``properties[property]`` (required).
    """
    if meter.aggregation in ("count", "unique_count"):
        number = 1.0
    else:
        given = properties.get(meter.property) if meter.property else None
        raw = given if given is not None else (1.0 if value is None else value)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise EventError(f"{meter.code}: property {meter.property!r} must be a number")
        number = float(raw)
        if not math.isfinite(number) or number < 0:
            raise EventError(f"{meter.code}: usage values must be finite and not negative")
    distinct = None
    if meter.aggregation == "unique_count":
        found = properties.get(meter.property) if meter.property else None
        if found is None or isinstance(found, dict | list):
            raise EventError(f"{meter.code}: needs a scalar property {meter.property!r}")
        distinct = found if isinstance(found, str) else msgspec.json.encode(found).decode()
        if len(distinct) > MAX_DISTINCT_LENGTH:
            raise EventError(f"{meter.code}: {meter.property!r} is over 200 characters")
    return Resolved(number, group_key(meter, properties), distinct)


def group_key(meter: Meter, properties: dict[str, Any]) -> str:
    """Canonical JSON of the meter's group-by values (missing ones are ``null``)."""
    if not meter.group_by:
        return ""
    key = msgspec.json.encode({g: properties.get(g) for g in sorted(meter.group_by)}).decode()
    if len(key) > MAX_GROUP_KEY_LENGTH:
        raise EventError(f"{meter.code}: group-by values are over 500 characters together")
    return key


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert events, skipping transaction ids the tenant recorded before; the ids inserted.

    One statement for the whole list (SQLAlchemy's "insertmanyvalues" batches the rows into
    one multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``). The rows go in sorted by
    transaction id: two batches that share ids wait on each other's index entries in the same
    order instead of deadlocking.
    """
    if not rows:
        return set()
    rows = sorted(rows, key=lambda row: str(row["transaction_id"]))
    connection = await session.connection()
    inserted = await connection.execute(cached_insert(session, _event_insert), rows)
    return set(inserted.scalars().all())


def _event_insert(insert: Any) -> Any:
    return (
        insert(UsageEvent)
        .on_conflict_do_nothing(index_elements=["tenant_id", "transaction_id"])
        .returning(UsageEvent.transaction_id)
    )


async def delete_events(
    session: AsyncSession, tenant_id: uuid.UUID, transaction_ids: list[str]
) -> None:
    """Take back events a hard limit refused after they were inserted (partial batches)."""
    connection = await session.connection()
    await connection.execute(
        delete(UsageEvent).where(
            UsageEvent.tenant_id == tenant_id, UsageEvent.transaction_id.in_(transaction_ids)
        )
    )


class Limit(NamedTuple):
    """A tenant's limit on a meter (``hard``: refused beyond, else only notified)."""

    limit: float
    hard: bool


async def entitlements_for(
    session: AsyncSession, tenant_id: uuid.UUID, codes: list[str]
) -> dict[str, Limit]:
    connection = await session.connection()
    rows = await connection.execute(_LIMITS, {"tenant": tenant_id, "codes": codes})
    return {meter: Limit(limit, hard) for meter, limit, hard in rows}


@dataclass(frozen=True, slots=True)
class Recorded:
    """A newly inserted event, ready to be summarised."""

    meter: Meter
    occurred_at: datetime
    resolved: Resolved


async def summarise(
    session: AsyncSession, tenant_id: uuid.UUID, events: Iterable[Recorded]
) -> None:
    """Add newly inserted events to the hourly roll-ups and the distinct-value sets."""
    rollups: dict[tuple[str, datetime, str], dict[str, Any]] = {}
    distinct: set[tuple[str, datetime, str, str]] = set()
    for event in events:
        code, resolved = event.meter.code, event.resolved
        key = (code, hour_of(event.occurred_at), resolved.group_key)
        row = rollups.get(key)
        if row is None:
            row = rollups[key] = {
                "tenant_id": tenant_id,
                "meter": key[0],
                "hour": key[1],
                "group_key": key[2],
                "count": 0,
                "total": 0.0,
                "maximum": resolved.value,
                "latest": resolved.value,
                "latest_at": event.occurred_at,
            }
        row["count"] += 1
        row["total"] += resolved.value
        row["maximum"] = max(row["maximum"], resolved.value)
        if event.occurred_at >= row["latest_at"]:
            row["latest"], row["latest_at"] = resolved.value, event.occurred_at
        if resolved.distinct is not None:
            distinct.add((code, day_of(event.occurred_at), resolved.group_key, resolved.distinct))
    if not (rollups or distinct):
        return
    connection = await session.connection()
    if rollups:
        # Sorted: concurrent transactions lock the same rows in the same order.
        rows = [rollups[k] for k in sorted(rollups)]
        await connection.execute(cached_insert(session, _rollup_upsert), rows)
    if distinct:
        values = [
            {"tenant_id": tenant_id, "meter": m, "day": d, "group_key": g, "value": v}
            for m, d, g, v in sorted(distinct)
        ]
        await connection.execute(cached_insert(session, _distinct_insert), values)


def _rollup_upsert(insert: Any) -> Any:
    """Merge a roll-up row into the stored one: counts and totals add, the maximum and the
    latest value (by time) win."""
    statement = insert(UsageRollup)
    new = statement.excluded
    newer = UsageRollup.latest_at.is_(None) | (new.latest_at >= UsageRollup.latest_at)
    return statement.on_conflict_do_update(
        index_elements=["tenant_id", "meter", "hour", "group_key"],
        set_={
            "count": UsageRollup.count + new.count,
            "total": UsageRollup.total + new.total,
            "maximum": case(
                (new.maximum > UsageRollup.maximum, new.maximum), else_=UsageRollup.maximum
            ),
            "latest": case((newer, new.latest), else_=UsageRollup.latest),
            "latest_at": case((newer, new.latest_at), else_=UsageRollup.latest_at),
        },
    )


def _distinct_insert(insert: Any) -> Any:
    return insert(UsageDistinct).on_conflict_do_nothing()


async def add_to_counter(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    code: str,
    start: datetime,
    value: float,
    limit: float | None,
) -> float | None:
    """Add ``value`` to the period's counter unless that crosses ``limit``; the new total, or
    None when refused. One statement per attempt, so the check and the increment are one atomic
    step under the database's row lock."""
    connection = await session.connection()
    row_of = {"tenant": tenant_id, "code": code, "start": start}
    adding = (
        (_ADD, {**row_of, "amount": value})
        if limit is None
        else (_ADD_WITHIN, {**row_of, "amount": value, "ceiling": limit})
    )
    for _ in range(5):
        row = (await connection.execute(*adding)).first()
        if row is not None:
            return float(row[0])
        current = await connection.scalar(_COUNTER, row_of)
        if current is not None:
            if limit is not None and current + value > limit:
                return None  # the limit refused the increment
            continue  # the row appeared after our update looked: try again
        if limit is not None and value > limit:
            return None
        created = await connection.execute(
            cached_insert(session, _counter_insert),
            {"tenant_id": tenant_id, "meter": code, "period_start": start, "value": value},
        )
        if created.first() is not None:
            return value
        # Another transaction created the row first: try the conditional update again.
    return None


def _counter_insert(insert: Any) -> Any:
    return (
        insert(UsageCounter)
        .on_conflict_do_nothing(index_elements=["tenant_id", "meter", "period_start"])
        .returning(UsageCounter.value)
    )


async def counter_value(
    session: AsyncSession, tenant_id: uuid.UUID, code: str, start: datetime
) -> float:
    connection = await session.connection()
    current = await connection.scalar(_COUNTER, {"tenant": tenant_id, "code": code, "start": start})
    return float(current or 0)


async def notice_if_reached(
    session: AsyncSession,
    events: Events,
    tenant_id: uuid.UUID,
    code: str,
    period: tuple[datetime, datetime],
    limit: Limit,
    used: float,
) -> None:
    """Emit ``quota.reached`` the first time a period's usage reaches the meter's limit."""
    if used < limit.limit:
        return
    start, end = period
    connection = await session.connection()
    inserted = await connection.execute(
        cached_insert(session, _notice_insert),
        {"tenant_id": tenant_id, "meter": code, "period_start": start},
    )
    if inserted.first() is None:
        return
    data = {
        "meter": code,
        "limit": limit.limit,
        "used": used,
        "hard": limit.hard,
        "period_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reset_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await events.emit(session, "quota.reached", data, tenant_id=tenant_id)


def _notice_insert(insert: Any) -> Any:
    return insert(QuotaNotice).on_conflict_do_nothing().returning(QuotaNotice.meter)
