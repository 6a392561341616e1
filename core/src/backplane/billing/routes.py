"""The billing API: plans, the tenant's subscription, usage events, usage and invoices.

Plans are created by operators (``backplane plans create``); tenants list the self-service
plans (and see their own), and an owner may move the tenant to a self-service plan. Everything
else is the caller's tenant only: every query is tenant-scoped (and row-level secured).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.aggregate import distinct_counts, period_report
from backplane.billing.events import record_batch
from backplane.billing.invoices import invoice_lines, invoice_out
from backplane.billing.models import Entitlement, utc
from backplane.billing.plan_models import Invoice, Plan, Subscription
from backplane.billing.plans import PlanError, PlanSpec, plan_by_code, plan_spec
from backplane.billing.schemas import (
    DayUsage,
    EventBatch,
    EventBatchOut,
    GroupUsage,
    InvoiceOut,
    MeterUsage,
    SubscriptionIn,
    SubscriptionOut,
    UsageOut,
)
from backplane.billing.subscriptions import ensure_subscription, subscribe
from backplane.billing.usage import UsageRecorder, period_bounds
from backplane.identity.auth import Principal, requires
from backplane.settings import Settings
from backplane.state import rails_of

Req = Request[Principal, Any, Any]


class PlansController(Controller):
    path = "/billing/plans"
    tags = ["billing"]
    guards = [requires("billing.read")]

    @get("/", summary="Plans this tenant can choose, and its own")
    async def list_plans(self, db: NamedDependency[AsyncSession]) -> list[PlanSpec]:
        own = select(Subscription.plan_id).where(Subscription.ended_at.is_(None))
        plans = await db.scalars(
            select(Plan)
            .where(or_((Plan.self_service & Plan.active), Plan.id.in_(own)))
            .order_by(Plan.fee, Plan.code)
        )
        return [await plan_spec(db, p) for p in plans]

    @get("/{plan_code:str}", summary="One plan (self-service, or the tenant's own)")
    async def get_plan(
        self, plan_code: FromPath[str], db: NamedDependency[AsyncSession]
    ) -> PlanSpec:
        plan = await plan_by_code(db, plan_code)
        own = await db.scalar(select(Subscription.plan_id).where(Subscription.ended_at.is_(None)))
        if plan is None or not ((plan.self_service and plan.active) or plan.id == own):
            raise NotFoundException(f"no plan {plan_code!r}")
        return await plan_spec(db, plan)


class SubscriptionController(Controller):
    path = "/billing/subscription"
    tags = ["billing"]

    @get("/", guards=[requires("billing.read")], summary="The tenant's current plan")
    async def show(
        self, request: Req, db: NamedDependency[AsyncSession], settings: NamedDependency[Settings]
    ) -> SubscriptionOut:
        current = await ensure_subscription(db, request.user.tenant_id, settings)
        if current is None:
            raise NotFoundException("this tenant has no subscription")
        return await _subscription_out(db, *current)

    @put(
        "/",
        guards=[requires("billing.manage")],
        summary="Change to a self-service plan (takes effect now; usage is kept)",
    )
    async def change(
        self,
        request: Req,
        data: JSONBody[SubscriptionIn],
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> SubscriptionOut:
        plan = await plan_by_code(db, data.plan)
        if plan is None or not plan.self_service or not plan.active:
            raise ClientException(f"no self-service plan {data.plan!r}")
        tenant_id = request.user.tenant_id
        await ensure_subscription(db, tenant_id, settings)
        try:
            subscription = await subscribe(db, tenant_id, plan)
        except PlanError as exc:
            raise ClientException(str(exc)) from None
        rails_of(request).features.forget(tenant_id)  # this process sees the change at once
        return await _subscription_out(db, subscription, plan)


async def _subscription_out(
    db: AsyncSession, subscription: Subscription, plan: Plan
) -> SubscriptionOut:
    start, end = period_bounds(datetime.now(UTC))
    return SubscriptionOut(
        plan=await plan_spec(db, plan),
        started_at=utc(subscription.started_at),
        period_start=start,
        period_end=end,
    )


class UsageController(Controller):
    path = "/billing"
    tags = ["billing"]

    @post(
        "/events",
        guards=[requires("billing.events.write")],
        status_code=200,
        summary="Record a batch of usage events (per-event results; idempotent per id)",
    )
    async def events(
        self,
        request: Req,
        data: JSONBody[EventBatch],
        usage: NamedDependency[UsageRecorder],
        settings: NamedDependency[Settings],
    ) -> EventBatchOut:
        limit = settings.billing.max_batch_events
        if len(data.events) > limit:
            raise HTTPException(status_code=413, detail=f"at most {limit} events per batch")
        return await record_batch(usage, request.user.tenant_id, data.events, settings.billing)

    @get("/usage", guards=[requires("billing.read")], summary="Usage in the current period")
    async def usage(self, request: Req, db: NamedDependency[AsyncSession]) -> UsageOut:
        tenant_id = request.user.tenant_id
        start, end = period_bounds(datetime.now(UTC))
        meters = rails_of(request).meters
        latest = frozenset(c for c, m in meters.items() if m.aggregation == "latest")
        reports = await period_report(db, tenant_id, start, end, latest)
        uniques = [m for m in meters.values() if m.aggregation == "unique_count"]
        distinct = await distinct_counts(db, tenant_id, start, end) if uniques else ({}, {}, {})
        limits = {e.meter: e for e in await db.scalars(select(Entitlement))}
        out = []
        for code in sorted(meters):
            meter, report, limit = meters[code], reports.get(code), limits.get(code)
            if meter.aggregation == "unique_count":
                value = float(distinct[0].get(code, 0))
                groups = [(g, float(n)) for (m, g), n in distinct[1].items() if m == code]
                days = [(d, float(n)) for (m, d), n in distinct[2].items() if m == code]
            elif report is not None:
                value = report.total.value(meter.aggregation)
                groups = [(g, f.value(meter.aggregation)) for g, f in report.groups.items()]
                days = [(d, f.value(meter.aggregation)) for d, f in report.days.items()]
            else:
                value, groups, days = 0.0, [], []
            out.append(
                MeterUsage(
                    meter=code,
                    unit=meter.unit,
                    aggregation=meter.aggregation,
                    value=value,
                    limit=limit.limit if limit else None,
                    hard=limit.hard if limit else None,
                    groups=[GroupUsage(msgspec.json.decode(g), v) for g, v in sorted(groups) if g],
                    days=[DayUsage(date=d.strftime("%Y-%m-%d"), value=v) for d, v in sorted(days)],
                )
            )
        return UsageOut(period_start=start, period_end=end, meters=out)

    @get("/invoices", guards=[requires("billing.read")], summary="The tenant's invoices")
    async def invoices(self, db: NamedDependency[AsyncSession]) -> list[InvoiceOut]:
        rows = await db.scalars(select(Invoice).order_by(Invoice.period_start.desc()))
        return [invoice_out(i) for i in rows]

    @get(
        "/invoices/{invoice_id:uuid}",
        guards=[requires("billing.read")],
        summary="One invoice with its lines",
    )
    async def invoice(
        self, invoice_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> InvoiceOut:
        invoice = await db.scalar(select(Invoice).where(Invoice.id == invoice_id))
        if invoice is None:
            raise NotFoundException("no such invoice")
        return invoice_out(invoice, await invoice_lines(db, invoice))


ROUTES = [PlansController, SubscriptionController, UsageController]
