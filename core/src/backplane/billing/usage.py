"""Recording usage in the caller's transaction, idempotently, with hard quotas held atomically.

``UsageRecorder.record`` inserts the event with ``ON CONFLICT DO NOTHING`` on
``(tenant_id, transaction_id)`` (a repeated id is ignored, even concurrently), then adds the
value to the period's counter with one conditional ``UPDATE ... WHERE value + :v <= :limit``
when the tenant has a hard limit on the meter. Both writes belong to the caller's transaction:
usage commits exactly when the business action does, and a refused request leaves nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import ADDITIVE
from backplane.billing.models import Entitlement, UsageCounter, UsageEvent
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
        meter = self.meters.get(code)
        if meter is None:
            raise UnknownMeterError(f"no meter {code!r} is registered")
        tenant_id = session_tenant(self.session)
        if tenant_id is None:
            raise PermissionError("usage can only be recorded for a tenant")
        if value < 0:
            raise ValueError("usage values cannot be negative")
        if meter.aggregation == "count":
            value = 1
        occurred = occurred_at or datetime.now(UTC)
        event = {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "meter": code,
            "transaction_id": transaction_id or uuid.uuid4().hex,
            "value": float(value),
            "properties": properties or {},
            "occurred_at": occurred,
        }
        dialect = self.session.bind.dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        inserted = await self.session.execute(
            insert(UsageEvent)
            .values(**event)
            .on_conflict_do_nothing(index_elements=["tenant_id", "transaction_id"])
            .returning(UsageEvent.id)
        )
        if inserted.first() is None:
            return UsageResult(recorded=False, meter=code)
        if meter.aggregation not in ADDITIVE:
            return UsageResult(recorded=True, meter=code)
        start, end = period_bounds(occurred)
        entitlement = await self.session.get(Entitlement, {"tenant_id": tenant_id, "meter": code})
        limit = entitlement.limit if entitlement is not None and entitlement.hard else None
        used = await self._add(tenant_id, code, start, float(value), limit, insert)
        if used is None:
            if limit is None:
                raise RuntimeError(f"could not add usage of {code} to its counter")
            current = await self.session.scalar(
                select(UsageCounter.value).where(
                    UsageCounter.meter == code, UsageCounter.period_start == start
                )
            )
            raise QuotaExceeded(code, limit, float(current or 0), end)
        result = UsageResult(
            recorded=True,
            meter=code,
            limit=entitlement.limit if entitlement else None,
            used=used,
            reset_at=end,
        )
        self.results.append(result)
        return result

    async def _add(
        self,
        tenant_id: uuid.UUID,
        code: str,
        start: datetime,
        value: float,
        limit: float | None,
        insert: Any,
    ) -> float | None:
        """Add ``value`` to the period's counter unless that crosses ``limit``; the new total,
        or None when refused. One statement per attempt, so the check and the increment are
        one atomic step under the database's row lock."""
        condition = [UsageCounter.meter == code, UsageCounter.period_start == start]
        for _ in range(5):
            guarded = (
                condition if limit is None else [*condition, UsageCounter.value + value <= limit]
            )
            row = (
                await self.session.execute(
                    update(UsageCounter)
                    .where(*guarded)
                    .values(value=UsageCounter.value + value)
                    .returning(UsageCounter.value)
                )
            ).first()
            if row is not None:
                return float(row[0])
            current = await self.session.scalar(select(UsageCounter.value).where(*condition))
            if current is not None:
                if limit is not None and current + value > limit:
                    return None  # the limit refused the increment
                continue  # the row appeared after our update looked: try again
            if limit is not None and value > limit:
                return None
            created = await self.session.execute(
                insert(UsageCounter)
                .values(tenant_id=tenant_id, meter=code, period_start=start, value=value)
                .on_conflict_do_nothing(index_elements=["tenant_id", "meter", "period_start"])
                .returning(UsageCounter.value)
            )
            if created.first() is not None:
                return value
            # Another transaction created the row first: try the conditional update again.
        return None
