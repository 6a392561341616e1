"""What the kernel's own hook implementations (:mod:`backplane.defaults`) do for billing."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_object_session


async def on_tenant_created(tenant: Any) -> None:
    """Subscribe a new tenant to the default plan, in the transaction that creates it."""
    from backplane.billing.context import context_for
    from backplane.billing.subscriptions import ensure_subscription

    session = async_object_session(tenant)
    if session is None:  # a detached tenant: nothing to write with (ensured on first use)
        return
    await ensure_subscription(session, tenant.id, context_for(session).settings)


def ledger(register: Any) -> None:
    from backplane.billing.providers import LedgerProvider

    register("ledger", LedgerProvider())
