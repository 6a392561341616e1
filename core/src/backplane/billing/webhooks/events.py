"""Emitting billing events: an event row, one delivery per matching endpoint, and a task each,
all in the caller's transaction (so a rolled-back action emits nothing, and a committed one
cannot lose its deliveries).

Event types
-----------
``quota.reached``
    A hard or soft metered limit was reached; ``data`` names the meter, limit, usage and reset.
``invoice.finalized``
    A billing period was closed into a finalized invoice; ``data`` carries the invoice.
``webhook.test``
    Sent by ``POST /api/billing/webhooks/{id}/test`` to that one endpoint, to check a receiver.

Every delivery's body is the JSON object
``{"id", "type", "created_at", "tenant_id", "data"}``; ``id`` is the event id, the same on
every retry and every endpoint, so receivers can de-duplicate (delivery is at least once).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from opentelemetry import propagate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.webhooks.models import (
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from backplane.db.tenancy import session_tenant
from backplane.plugins import KERNEL_PLUGIN
from backplane.tasks.models import OutboxMessage

QUOTA_REACHED = "quota.reached"
INVOICE_FINALIZED = "invoice.finalized"
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES: tuple[str, ...] = (QUOTA_REACHED, INVOICE_FINALIZED, WEBHOOK_TEST)
"""Every event type an endpoint may subscribe to (an empty subscription means all)."""

DELIVER_TASK = f"{KERNEL_PLUGIN}.deliver_webhook"
DISPATCH_TASK = f"{KERNEL_PLUGIN}.dispatch_webhooks"
TASK_QUEUE = "backplane"
"""The queue of the kernel's own tasks (``defaults.register_tasks``)."""


class UnknownEventTypeError(ValueError):
    """``emit_billing_event`` was given an event type outside :data:`EVENT_TYPES`."""


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return not endpoint.event_types or event_type in endpoint.event_types


async def emit_billing_event(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    tenant_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record a billing event for the session's tenant and queue its webhook deliveries.

    Writes in the caller's transaction and does not commit: deliveries exist (and are sent)
    exactly when the caller's transaction commits. ``tenant_id`` is only for callers whose
    session is not bound to one tenant (a cross-tenant period close); it defaults to the
    session's tenant. ``data`` must be JSON-serialisable. Returns the event id.
    """
    return await emit_event(session, event_type, data, tenant_id=tenant_id)


async def emit_event(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    tenant_id: uuid.UUID | None = None,
    endpoints: Iterable[WebhookEndpoint] | None = None,
) -> uuid.UUID:
    """:func:`emit_billing_event`, optionally to the given ``endpoints`` only (test events)."""
    if event_type not in EVENT_TYPES:
        raise UnknownEventTypeError(
            f"unknown billing event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    tenant = tenant_id or session_tenant(session)
    if tenant is None:
        raise ValueError("emit_billing_event needs a tenant: bind the session or pass tenant_id")
    now = datetime.now(UTC)
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "type": event_type,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tenant_id": str(tenant),
        "data": data,
    }
    try:
        payload = msgspec.json.encode(body).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"billing event data must be JSON-serialisable: {exc}") from None
    if endpoints is None:
        # Filtered explicitly by tenant too: the session may bypass tenancy (see tenant_id).
        rows = await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == tenant, WebhookEndpoint.enabled.is_(True)
            )
        )
        targets = [e for e in rows if subscribed(e, event_type)]
    else:
        targets = list(endpoints)
    session.add(
        WebhookEvent(
            id=event_id, tenant_id=tenant, type=event_type, payload=payload, created_at=now
        )
    )
    await session.flush()  # the event before its deliveries (foreign keys)
    for endpoint in targets:
        delivery = WebhookDelivery(
            id=uuid.uuid4(),
            tenant_id=tenant,
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=event_type,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        enqueue_delivery(session, tenant, delivery.id)
    await session.flush()
    return event_id


def enqueue_delivery(session: AsyncSession, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
    """Add a ``deliver_webhook`` task to the session's transaction (the transactional outbox).

    Written directly rather than through a :class:`~backplane.TaskQueue` because the tenant the
    task runs for is the delivery's, which a cross-tenant caller's session does not carry.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    session.add(
        OutboxMessage(
            actor=DELIVER_TASK,
            queue=TASK_QUEUE,
            args=[str(delivery_id)],
            kwargs={},
            context_tenant_id=tenant_id,
            trace_context=carrier,
        )
    )
