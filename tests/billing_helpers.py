"""Shared by the billing tests: meters of every aggregation, and sessions on a test database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Meter
from backplane.billing.context import BillingContext
from backplane.billing.plan_models import Subscription
from backplane.billing.plans import PlanSpec, store_plan
from backplane.billing.providers import LedgerProvider
from backplane.billing.subscriptions import subscribe
from backplane.db.engine import Database
from backplane.db.tenancy import bind_tenant
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


def billing_context(settings: Settings, meters: dict[str, Meter] | None = None) -> BillingContext:
    return BillingContext(settings, dict(meters or METERS), {"ledger": LedgerProvider()})


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
