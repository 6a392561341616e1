"""The kernel's periodic billing job: close the period that ended into invoices.

Runs hourly (``register_tasks`` in :mod:`backplane.defaults`); it acts once the previous period
ended more than ``billing.close_grace_s`` ago (late events still count), closes each tenant in
its own savepoint (one tenant's failure does not hold back the others, and is retried on the
next run), and remembers a fully closed period in the kernel state so later runs return at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from backplane.billing.invoices import close_tenant_period, previous_period
from backplane.billing.usage import period_bounds
from backplane.db.models import KernelState
from backplane.db.tenancy import rebind_tenant
from backplane.identity.models import Tenant
from backplane.kernel import Kernel, internals

log = logging.getLogger(__name__)
STATE_KEY = "billing.closed_period"


async def close_ended_period(kernel: Kernel, now: datetime | None = None) -> int:
    """Invoice every tenant for the previous period; return how many invoices were closed."""
    session = kernel.db
    context = internals(kernel).billing
    now = now or datetime.now(UTC)
    current, _ = period_bounds(now)
    if now < current + timedelta(seconds=context.settings.billing.close_grace_s):
        return 0
    period = previous_period(now)
    stamp = period.strftime("%Y-%m")
    state = await session.get(KernelState, STATE_KEY)
    if state is not None and state.value >= stamp:
        return 0
    tenants = (await session.scalars(select(Tenant.id).where(Tenant.created_at < current))).all()
    closed, failed = 0, 0
    for tenant_id in tenants:
        await rebind_tenant(session, tenant_id)
        try:
            async with session.begin_nested():
                if await close_tenant_period(session, tenant_id, period, context) is not None:
                    closed += 1
        except Exception:
            failed += 1
            log.exception("closing %s for tenant %s failed; retried next run", stamp, tenant_id)
    await rebind_tenant(session, None)
    if not failed:
        await session.merge(KernelState(key=STATE_KEY, value=stamp))
    return closed
