"""Billing: plans, usage and invoices API, webhooks, the period close, the kernel's ledger
provider, and the default plan of new tenants."""

from __future__ import annotations

from typing import Any

from backplane._contract import EventType, Meter, Permission
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.billing.routes import ROUTES
    from backplane.billing.webhooks.routes import ROUTES as WEBHOOK_ROUTES

    register(*ROUTES, *WEBHOOK_ROUTES)


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code="api.requests",
            unit="request",
            aggregation="count",
            description="Authenticated API requests (recorded by later issues' middleware)",
        )
    )


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="billing.read",
            roles=("owner", "admin"),
            description="See the tenant's plan, usage and invoices",
        ),
        Permission(
            code="billing.manage",
            roles=("owner",),
            description="Change the tenant's plan (to self-service plans)",
        ),
        Permission(
            code="billing.events.write",
            roles=("owner", "admin"),
            description="Send usage events (POST /api/billing/events)",
        ),
        Permission(
            code="billing.webhooks.manage",
            roles=("owner", "admin"),
            description="Register billing webhook endpoints, see their secrets once and their "
            "delivery history",
        ),
    )


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane.billing.jobs import close_ended_period
    from backplane.billing.webhooks.delivery import deliver_webhook, dispatch_webhooks

    # Hourly: acts once per period, billing.close_grace_s after it ended; many tenants take time.
    register(close_ended_period, queue="backplane", schedule="23 * * * *", time_limit_ms=3_600_000)
    # Retries are the delivery's own (webhooks settings), so the task itself is not retried;
    # its time limit covers the HTTP attempt (webhooks.timeout_s) with room to record it.
    register(deliver_webhook, queue="backplane", max_retries=0, time_limit_ms=120_000)
    register(dispatch_webhooks, queue="backplane", schedule="* * * * *")


@hookimpl
def register_event_types(register: Any) -> None:
    register(
        EventType(
            name="quota.reached",
            description="A metered limit (hard or soft) was reached; `data` names the meter, "
            "limit, usage and reset time",
            live=True,
        ),
        EventType(
            name="invoice.finalized",
            description="A billing period was closed into a finalized invoice (`data`)",
        ),
        EventType(
            name="webhook.test",
            description="Sent by POST /api/billing/webhooks/{id}/test to that endpoint only",
        ),
    )


@hookimpl
async def event_emitted(kernel: Any, event: Any) -> None:
    """Billing webhooks subscribe to every platform event: stored, and a delivery task per
    subscribed endpoint queued in the emitter's transaction."""
    from backplane.billing.webhooks.events import queue_deliveries

    await queue_deliveries(kernel, event)


@hookimpl
def register_billing_providers(register: Any) -> None:
    """The kernel's own ledger (``billing.provider = "ledger"``, the default)."""
    from backplane.billing.providers import LedgerProvider

    register("ledger", LedgerProvider())


@hookimpl
async def tenant_created(kernel: Any, tenant: Any) -> None:
    """New tenants start on the default plan (``billing.default_plan``), in the transaction
    that creates them."""
    from backplane.billing.subscriptions import ensure_subscription

    await ensure_subscription(kernel.db, tenant.id, kernel.settings)
