"""Usage tables: events, counters, limits, hourly roll-ups. All tenant-owned, with RLS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

S = TypeVar("S", bound=msgspec.Struct)


def tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def from_row(kind: type[S], row: Any, **given: Any) -> S:
    """A ``kind`` body of ``given`` and of ``row``'s attributes named like its other fields,
    every datetime in UTC (see :func:`utc`)."""
    values = {f: given[f] if f in given else getattr(row, f) for f in kind.__struct_fields__}
    return kind(**{f: utc(v) if isinstance(v, datetime) else v for f, v in values.items()})


class UsageEvent(TenantScoped, Base):
    """One unit of use. ``transaction_id`` makes recording idempotent per tenant."""

    __tablename__ = "backplane_usage_events"
    __table_args__ = (UniqueConstraint("tenant_id", "transaction_id"), tenant_fk())

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    meter: Mapped[str] = mapped_column(String(100), index=True)
    transaction_id: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UsageCounter(TenantScoped, Base):
    """The running total of an additive meter (count, sum) for one billing period.

    Quotas are checked and consumed with one conditional ``UPDATE`` of this row, which the
    database serialises per (tenant, meter, period): concurrent requests cannot overshoot.
    """

    __tablename__ = "backplane_usage_counters"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter", "period_start"), tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float, default=0.0)


class Entitlement(TenantScoped, Base):
    """A metered limit per billing period for a tenant (set from its plan)."""

    __tablename__ = "backplane_entitlements"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter"), tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    limit: Mapped[float] = mapped_column(Float)
    hard: Mapped[bool] = mapped_column(Boolean, default=True)


class UsageRollup(TenantScoped, Base):
    """Usage of one meter in one hour for one group (the meter's ``group_by`` values).

    Maintained in the same statement batch as the events it summarises (so it is exact and
    commits with them); current-usage reads fold at most ~744 rows per meter and group per
    month instead of scanning events.
    """

    __tablename__ = "backplane_usage_rollups"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter", "hour", "group_key"), tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    group_key: Mapped[str] = mapped_column(String(500))
    """Canonical JSON of the group-by values (``""`` for meters without ``group_by``)."""
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    maximum: Mapped[float | None] = mapped_column(Float, nullable=True)
    latest: Mapped[float | None] = mapped_column(Float, nullable=True)
    latest_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UsageDistinct(TenantScoped, Base):
    """The distinct values a ``unique_count`` meter saw per day and group.

    Distinct counts cannot be summed across hours, so they get their own set per day; a period's
    count is ``COUNT(DISTINCT value)`` over its days.
    """

    __tablename__ = "backplane_usage_distinct"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "meter", "day", "group_key", "value"),
        tenant_fk(),
    )

    meter: Mapped[str] = mapped_column(String(100))
    day: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    group_key: Mapped[str] = mapped_column(String(500))
    value: Mapped[str] = mapped_column(String(200))


class QuotaNotice(TenantScoped, Base):
    """That a metered limit was reached in a period (``quota.reached`` is sent once)."""

    __tablename__ = "backplane_quota_notices"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter", "period_start"), tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
