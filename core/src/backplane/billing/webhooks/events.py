"""Billing webhooks as a subscriber of platform events (:mod:`backplane.events`).

For every event, in the emitter's transaction: the event row (its JSON body, the same on every
retry and endpoint, so receivers can de-duplicate on ``id``; delivery is at least once), one
delivery per enabled endpoint of the tenant subscribed to the type (an empty subscription
means all), and a ``core.deliver_webhook`` task each, queued through ``kernel.tasks``. A
rolled-back action therefore delivers nothing, and a committed one cannot lose a delivery.

The kernel's own event types (``register_event_types`` in :mod:`backplane.defaults.billing`):
``quota.reached`` (a metered limit was reached), ``invoice.finalized`` (a period was closed
into an invoice) and ``webhook.test`` (``POST /api/billing/webhooks/{id}/test``, to that one
endpoint). Plugins add their own; tenants subscribe endpoints to any registered type.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select

from backplane.billing.webhooks.models import (
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from backplane.events import Event
from backplane.plugins import KERNEL_PLUGIN

if TYPE_CHECKING:
    from backplane.kernel import Kernel

QUOTA_REACHED = "quota.reached"
INVOICE_FINALIZED = "invoice.finalized"
WEBHOOK_TEST = "webhook.test"
DELIVER_TASK = f"{KERNEL_PLUGIN}.deliver_webhook"


async def queue_deliveries(
    kernel: Kernel, event: Event, endpoints: Iterable[WebhookEndpoint] | None = None
) -> list[uuid.UUID]:
    """Store ``event`` and queue its deliveries (to ``endpoints``, or to every subscribed
    endpoint of the event's tenant); the delivery ids."""
    session = kernel.db
    if endpoints is None:
        rows = await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == event.tenant_id, WebhookEndpoint.enabled.is_(True)
            )
        )
        endpoints = [e for e in rows if not e.event_types or event.type in e.event_types]
    session.add(
        WebhookEvent(
            id=event.id,
            tenant_id=event.tenant_id,
            type=event.type,
            payload=event.envelope().decode(),
            created_at=event.created_at,
        )
    )
    await session.flush()  # the event before its deliveries (foreign keys)
    queued = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(
            id=uuid.uuid4(),
            tenant_id=event.tenant_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type,
            status=PENDING,
            attempts=0,
            next_attempt_at=event.created_at,
            created_at=event.created_at,
        )
        session.add(delivery)
        await kernel.tasks.enqueue(DELIVER_TASK, str(delivery.id))
        queued.append(delivery.id)
    await session.flush()
    return queued
