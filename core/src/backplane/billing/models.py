"""Usage tables. All tenant-owned, with row-level security on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


class UsageEvent(TenantScoped, Base):
    """One unit of use. ``transaction_id`` makes recording idempotent per tenant."""

    __tablename__ = "backplane_usage_events"
    __table_args__ = (UniqueConstraint("tenant_id", "transaction_id"), _tenant_fk())

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
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter", "period_start"), _tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[float] = mapped_column(Float, default=0.0)


class Entitlement(TenantScoped, Base):
    """A metered limit per billing period for a tenant (set from its plan)."""

    __tablename__ = "backplane_entitlements"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "meter"), _tenant_fk())

    meter: Mapped[str] = mapped_column(String(100))
    limit: Mapped[float] = mapped_column(Float)
    hard: Mapped[bool] = mapped_column(Boolean, default=True)
