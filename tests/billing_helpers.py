"""Shared by the billing tests: meters of every aggregation, and sessions on a test database."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Meter
from backplane.billing.plan_models import Subscription
from backplane.billing.plans import PlanSpec, store_plan
from backplane.billing.providers import BillingContext
from backplane.billing.subscriptions import subscribe
from backplane.db.engine import Database
from backplane.db.tenancy import bind_tenant
from backplane.events import Events
from backplane.settings import Settings

METERS = {
    m.code: m
    for m in (
        Meter(code="test.calls", unit="call", aggregation="count"),
        Meter(
            code="test.tokens",
            unit="token",
            aggregation="sum",
            property="tokens",
            group_by=("model",),
        ),
        Meter(code="test.peak", unit="worker", aggregation="max"),
        Meter(code="test.users", unit="user", aggregation="unique_count", property="user"),
        Meter(code="test.storage", unit="GB", aggregation="latest"),
    )
}


_RAILS: dict[int, tuple[Settings, Any]] = {}


def rails_for(settings: Settings) -> Any:
    """The rails a process with ``settings`` builds (kept per settings object: building them
    loads the plugins)."""
    from backplane.kernel import Rails
    from backplane.loading import load_plugins

    found = _RAILS.get(id(settings))
    if found is None or found[0] is not settings:
        found = _RAILS[id(settings)] = (settings, Rails.build(settings, load_plugins(settings)))
    return found[1]


def billing_events(settings: Settings) -> Events:
    """The platform events of a process with ``settings`` (webhooks subscribed)."""
    events: Events = rails_for(settings).events
    return events


def billing_context(settings: Settings, meters: dict[str, Meter] | None = None) -> BillingContext:
    """The process's billing context, with the test meters (or ``meters``)."""
    return dataclasses.replace(rails_for(settings).billing, meters=dict(meters or METERS))


@asynccontextmanager
async def session_for(
    settings: Settings, tenant_id: uuid.UUID | None, reason: str = "test"
) -> AsyncIterator[AsyncSession]:
    """One committed transaction, bound to ``tenant_id`` (or bypassing tenancy if None)."""
    database = Database(settings)
    try:
        session = database.maintenance(reason) if tenant_id is None else database.sessions()
        async with session:
            if tenant_id is not None:
                bind_tenant(session, tenant_id)
            async with session.begin():
                yield session
    finally:
        await database.dispose()


async def put_plans(settings: Settings, *specs: dict[str, Any]) -> None:
    async with session_for(settings, None, "test stores plans") as session:
        for spec in specs:
            await store_plan(session, msgspec.convert(spec, PlanSpec), METERS)


async def history(
    settings: Settings, tenant_id: uuid.UUID, *segments: tuple[str, datetime]
) -> None:
    """Replace the tenant's subscriptions by ``(plan code, from)`` segments."""
    from backplane.billing.plans import plan_by_code

    async with session_for(settings, None, "test writes subscription history") as session:
        await session.execute(delete(Subscription).where(Subscription.tenant_id == tenant_id))
        for code, start in segments:
            plan = await plan_by_code(session, code)
            assert plan is not None, code
            await subscribe(session, tenant_id, plan, at=start)


async def paid_since_september(settings: Settings, tenant_id: uuid.UUID) -> None:
    """A tenant on a plan with a fee since 2026-09-01, created before that period: closing
    2026-09 makes it one invoice (the period job bills tenants created before a period)."""
    from backplane.identity.models import Tenant

    await put_plans(settings, {"code": "paid", "name": "Paid", "fee": 1000})
    await history(settings, tenant_id, ("paid", datetime(2026, 9, 1, tzinfo=UTC)))
    async with session_for(settings, None, "test backdates a tenant") as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.created_at = datetime(2026, 8, 1, tzinfo=UTC)
