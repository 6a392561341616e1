"""Recording usage in the caller's transaction, idempotently, with hard quotas held atomically.

``UsageRecorder.record`` inserts the event with ``ON CONFLICT DO NOTHING`` on
``(tenant_id, transaction_id)`` (a repeated id is ignored, even concurrently), then adds the
value to the period's counter with one conditional ``UPDATE ... WHERE value + :v <= :limit``
when the tenant has a hard limit on the meter, then adds the event to the hourly roll-ups
(:mod:`backplane.billing.recording`). Every write belongs to the caller's transaction: usage
commits exactly when the business action does, and a refused request leaves nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import Meter
from backplane.billing.meters import ADDITIVE
from backplane.billing.models import Entitlement, UsageEvent
from backplane.billing.recording import (
    Recorded,
    add_to_counter,
    counter_value,
    insert_for,
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
        properties = properties or {}
        resolved = resolve(meter, value, properties)  # EventError is a ValueError
        occurred = (occurred_at or datetime.now(UTC)).astimezone(UTC)
        event = {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "meter": code,
            "transaction_id": transaction_id or uuid.uuid4().hex,
            "value": resolved.value,
            "properties": properties,
            "occurred_at": occurred,
        }
        inserted = await self.session.execute(
            insert_for(self.session)(UsageEvent)
            .values(**event)
            .on_conflict_do_nothing(index_elements=["tenant_id", "transaction_id"])
            .returning(UsageEvent.id)
        )
        if inserted.first() is None:
            return UsageResult(recorded=False, meter=code)
        result = UsageResult(recorded=True, meter=code)
        if meter.aggregation in ADDITIVE:
            result = await self._count(tenant_id, code, occurred, resolved.value)
        await summarise(self.session, tenant_id, [Recorded(meter, occurred, resolved)])
        return result

    async def _count(
        self, tenant_id: uuid.UUID, code: str, occurred: datetime, value: float
    ) -> UsageResult:
        """Add to the period's counter, held by the tenant's hard limit if it has one."""
        start, end = period_bounds(occurred)
        entitlement = await self.session.get(Entitlement, {"tenant_id": tenant_id, "meter": code})
        limit = entitlement.limit if entitlement is not None and entitlement.hard else None
        used = await add_to_counter(self.session, tenant_id, code, start, value, limit)
        if used is None:
            if limit is None:
                raise RuntimeError(f"could not add usage of {code} to its counter")
            current = await counter_value(self.session, tenant_id, code, start)
            raise QuotaExceeded(code, limit, current, end)
        if entitlement is not None:
            await notice_if_reached(
                self.session,
                tenant_id,
                code,
                (start, end),
                entitlement.limit,
                entitlement.hard,
                used,
            )
        result = UsageResult(
            recorded=True,
            meter=code,
            limit=entitlement.limit if entitlement else None,
            used=used,
            reset_at=end,
        )
        self.results.append(result)
        return result
