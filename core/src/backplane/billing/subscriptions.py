"""One open subscription per tenant; plan changes take effect at once and keep the usage.

Usage belongs to the tenant, never to a subscription: a plan change ends the open segment and
starts the next at the same instant, and nothing about recorded events or the period's counters
changes. The tenant's per-meter limits (:class:`~backplane.billing.models.Entitlement`, which
the usage recorder enforces) are re-derived from the new plan in the same transaction.

Every function takes the tenant explicitly, so it works on a tenant-bound session (the API) and
on an operator's tenancy-bypassing one (the CLI, the period close) alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.record import record as audit
from backplane.billing.models import Entitlement, utc
from backplane.billing.plan_models import (
    FEATURE,
    METERED,
    Plan,
    PlanCharge,
    PlanEntitlement,
    Subscription,
)
from backplane.billing.plans import PlanError, ensure_plan
from backplane.settings import Settings


async def open_subscription(
    session: AsyncSession, tenant_id: uuid.UUID
) -> tuple[Subscription, Plan] | None:
    row = (
        await session.execute(
            select(Subscription, Plan)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(Subscription.tenant_id == tenant_id, Subscription.ended_at.is_(None))
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def _is_free(session: AsyncSession, plan: Plan) -> bool:
    charged = await session.scalar(select(PlanCharge.meter).where(PlanCharge.plan_id == plan.id))
    return plan.fee == 0 and charged is None


async def subscribe(
    session: AsyncSession, tenant_id: uuid.UUID, plan: Plan, *, at: datetime | None = None
) -> Subscription:
    """Put ``tenant_id`` on ``plan`` from ``at`` (now): end the open segment, start a new one.

    An invoice has one currency, so moving to a plan in another currency is refused unless the
    current plan costs nothing (no fee, no charges).
    """
    at = utc(at or datetime.now(UTC))
    current = await open_subscription(session, tenant_id)
    if current is not None:
        subscription, old = current
        if old.id == plan.id:
            return subscription
        if old.currency != plan.currency and not await _is_free(session, old):
            raise PlanError(
                f"plan {plan.code} is billed in {plan.currency} and plan {old.code} in "
                f"{old.currency}; a paid subscription cannot change currency"
            )
        if at < utc(subscription.started_at):
            raise PlanError("a plan change cannot take effect before the current plan started")
        subscription.ended_at = at
        await session.flush()  # the open-segment index admits the next one only now
    new = Subscription(id=uuid.uuid4(), tenant_id=tenant_id, plan_id=plan.id, started_at=at)
    session.add(new)
    await session.flush()
    details = {"from": current[1].code if current is not None else None}
    await audit(
        session, "plan.changed", tenant_id=tenant_id, target=("plan", plan.code), details=details
    )
    await sync_entitlements(session, tenant_id, plan.id)
    return new


async def sync_entitlements(
    session: AsyncSession, tenant_id: uuid.UUID, plan_id: uuid.UUID
) -> None:
    """Make the tenant's metered limits those of ``plan_id`` (operator overrides are replaced)."""
    await session.execute(delete(Entitlement).where(Entitlement.tenant_id == tenant_id))
    limits = await session.scalars(
        select(PlanEntitlement).where(
            PlanEntitlement.plan_id == plan_id, PlanEntitlement.kind == METERED
        )
    )
    session.add_all(
        Entitlement(tenant_id=tenant_id, meter=r.key, limit=float(r.value or 0), hard=r.hard)
        for r in limits
    )
    await session.flush()


async def resync_plan_subscribers(session: AsyncSession, plan_id: uuid.UUID) -> int:
    """After a plan changed: re-derive limits for every tenant on it (bypassing session)."""
    on_plan = (Subscription.plan_id == plan_id, Subscription.ended_at.is_(None))
    tenants = (await session.scalars(select(Subscription.tenant_id).where(*on_plan))).all()
    for tenant_id in tenants:
        await sync_entitlements(session, tenant_id, plan_id)
    return len(tenants)


async def ensure_subscription(
    session: AsyncSession, tenant_id: uuid.UUID, settings: Settings, since: datetime | None = None
) -> tuple[Subscription, Plan] | None:
    """The open subscription, or one on the default plan from ``since`` (None: no default)."""
    current = await open_subscription(session, tenant_id)
    code = settings.billing.default_plan
    if current is not None or not code:
        return current
    plan = await ensure_plan(session, code, settings.billing.currency)
    subscription = await subscribe(session, tenant_id, plan, at=since)
    return subscription, plan


async def segments(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, Plan]]:
    """The tenant's plans over ``[start, end)``, clipped to it, in time order."""
    rows = await session.execute(
        select(Subscription, Plan)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(
            Subscription.tenant_id == tenant_id,
            Subscription.started_at < end,
            or_(Subscription.ended_at.is_(None), Subscription.ended_at > start),
        )
        .order_by(Subscription.started_at)
    )
    found = []
    for subscription, plan in rows.tuples():
        begin = max(utc(subscription.started_at), start)
        finish = min(utc(subscription.ended_at) if subscription.ended_at else end, end)
        if begin < finish:
            found.append((begin, finish, plan))
    return found


async def features_of(session: AsyncSession, tenant_id: uuid.UUID) -> frozenset[str]:
    """Boolean entitlements of the tenant's current plan."""
    rows = await session.scalars(
        select(PlanEntitlement.key)
        .join(Subscription, Subscription.plan_id == PlanEntitlement.plan_id)
        .where(
            Subscription.tenant_id == tenant_id,
            Subscription.ended_at.is_(None),
            PlanEntitlement.kind == FEATURE,
        )
    )
    return frozenset(rows.all())
