"""Request and response bodies of the billing API (plans are :class:`PlanSpec` documents)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from backplane.billing.plans import PlanCode, PlanSpec


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=True):
    plan: PlanCode


class SubscriptionOut(msgspec.Struct):
    plan: PlanSpec
    started_at: datetime
    period_start: datetime
    period_end: datetime


class GroupUsage(msgspec.Struct):
    group: dict[str, Any]
    value: float


class DayUsage(msgspec.Struct):
    date: str
    value: float


class MeterUsage(msgspec.Struct):
    meter: str
    unit: str
    aggregation: str
    value: float
    limit: float | None
    hard: bool | None
    groups: list[GroupUsage]
    days: list[DayUsage]


class UsageOut(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    meters: list[MeterUsage]


class InvoiceItem(msgspec.Struct, frozen=True, kw_only=True):
    """A line a plugin bills on a tenant's invoice (hook ``invoice_closing``): its own priced
    item, such as a marketplace model's calls, beside the plan's fee and usage charges."""

    description: str
    amount: int
    """Minor units of the invoice's currency, not negative (a plugin prices it exactly)."""
    quantity: str = "1"
    meter: str | None = None
    """The meter the quantity was read from, if any."""
    details: list[dict[str, str]] = []
    """How the amount was reached (shown on the line; say nothing about other tenants)."""


class InvoiceLineOut(msgspec.Struct):
    position: int
    kind: str
    plan: str
    meter: str | None
    description: str
    segment_start: datetime
    segment_end: datetime
    quantity: str
    amount: int
    details: list[dict[str, Any]]


class InvoiceOut(msgspec.Struct):
    """Amounts in minor units of ``currency``."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    number: str
    status: str
    period_start: datetime
    period_end: datetime
    currency: str
    total: int
    provider: str | None
    provider_reference: str | None
    finalized_at: datetime | None
    lines: list[InvoiceLineOut] = msgspec.field(default_factory=list)


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    transaction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    """Idempotency key per tenant: an id seen before is answered ``duplicate``."""
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    value: float | None = None
    properties: dict[str, Any] | None = None
    timestamp: datetime | None = None
    """When the usage happened (default: when it is received); must carry a time zone."""


class EventBatch(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[EventIn], msgspec.Meta(min_length=1)]


class EventResult(msgspec.Struct):
    transaction_id: str
    status: Literal["recorded", "duplicate", "error"]
    error: str | None = None


class EventBatchOut(msgspec.Struct):
    recorded: int
    duplicates: int
    errors: int
    results: list[EventResult]
