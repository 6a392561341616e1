"""Plans (global, defined by operators), subscriptions and invoices (tenant-owned, with RLS)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane.billing.models import tenant_fk
from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped

FEATURE, STATIC, METERED = "feature", "static", "metered"
DRAFT, FINALIZED = "draft", "finalized"


class Plan(Base):
    """What a tenant can subscribe to: a monthly fee, entitlements and charges per meter.

    Not tenant-owned: every tenant reads the same catalogue (self-service plans are listed to
    tenants; the others only to the tenants on them).
    """

    __tablename__ = "backplane_plans"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(10), default="month")
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    """Fixed fee per period, in minor units (prorated by time for partial periods)."""
    self_service: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether a tenant's owner may switch to this plan through the API."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    """Archived plans keep their subscribers but take no new ones."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PlanEntitlement(Base):
    """A feature (boolean), a static allowance (seats) or a metered limit per period."""

    __tablename__ = "backplane_plan_entitlements"
    __table_args__ = (PrimaryKeyConstraint("plan_id", "kind", "key"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("backplane_plans.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(100))
    """The feature name, the static allowance's name, or the meter code."""
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Static allowance or metered limit; None for features."""
    hard: Mapped[bool] = mapped_column(Boolean, default=True)


class PlanCharge(Base):
    """How one meter is priced on a plan (a :class:`~backplane.billing.pricing.ChargeSpec`)."""

    __tablename__ = "backplane_plan_charges"
    __table_args__ = (PrimaryKeyConstraint("plan_id", "meter"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("backplane_plans.id", ondelete="CASCADE")
    )
    meter: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


class Subscription(TenantScoped, Base):
    """A segment of a tenant's life on one plan: ``[started_at, ended_at)``.

    A plan change ends the open segment and starts a new one at the same instant; at most one
    segment per tenant is open (a partial unique index), and old segments stay for invoicing.
    """

    __tablename__ = "backplane_subscriptions"
    __table_args__ = (
        tenant_fk(),
        Index(
            "ix_backplane_subscriptions_open",
            "tenant_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("backplane_plans.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Invoice(TenantScoped, Base):
    """One billing period of one tenant; ``(tenant, period_start)`` is unique, so closing a
    period twice finds the invoice made the first time."""

    __tablename__ = "backplane_invoices"
    __table_args__ = (UniqueConstraint("tenant_id", "period_start"), tenant_fk())

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[str] = mapped_column(String(60))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default=DRAFT)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    provider: Mapped[str | None] = mapped_column(String(50), nullable=True)
    provider_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InvoiceLine(TenantScoped, Base):
    """One charge (or the prorated fee) of one subscription segment."""

    __tablename__ = "backplane_invoice_lines"
    __table_args__ = (tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("backplane_invoices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    """``fee`` or ``usage``."""
    plan_code: Mapped[str] = mapped_column(String(63))
    meter: Mapped[str | None] = mapped_column(String(100), nullable=True)
    description: Mapped[str] = mapped_column(String(300))
    segment_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    segment_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    quantity: Mapped[str] = mapped_column(String(60))
    """Exact decimal text (the aggregated usage, or the prorated share of the fee)."""
    amount: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
