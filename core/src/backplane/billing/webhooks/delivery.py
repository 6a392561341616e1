"""The delivery tasks: ``core.deliver_webhook`` (one attempt of one delivery) and
``core.dispatch_webhooks`` (every minute: queue the deliveries whose next attempt is due).

A delivery row is claimed before its HTTP attempt by moving ``next_attempt_at`` past the
attempt's time limit, so duplicates of the task find nothing to claim and a process that dies
mid-attempt leaves a row the dispatcher queues again once the claim lapses. The claim is
committed before the HTTP call: on SQLite that ends the task's transaction and releases the
database's single write lock for the duration of the call; on PostgreSQL, where the task
runtime runs the actor's session in savepoints of one transaction that ends when the actor
returns, the delivery row stays locked until the attempt is recorded, which holds concurrent
duplicates off the same way.
Delivery is therefore at least once; the event id in the body (and the
``Backplane-Event-Id`` header) lets receivers de-duplicate.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.webhooks.events import DELIVER_TASK
from backplane.billing.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from backplane.billing.webhooks.sealing import unseal
from backplane.kernel import Kernel, internals, maintenance_session
from backplane.secret_key import secret_key
from backplane.settings import WebhookSettings
from backplane.tasks.context import TaskQueue

if TYPE_CHECKING:
    from backplane.billing.webhooks.sender import Outcome

CLAIM_MARGIN_S = 30.0
"""A claim outlasts the attempt's timeout by this much before the dispatcher may retry it."""


def backoff(settings: WebhookSettings, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: ``backoff_s`` doubling, capped."""
    seconds = settings.backoff_s * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, settings.max_backoff_s))


async def deliver_webhook(kernel: Kernel, delivery_id: str) -> None:
    """Task: claim, send and record one attempt of one delivery (runs for the delivery's
    tenant); nothing if the delivery is not due (or not ours)."""
    from backplane.billing.webhooks.sender import Outcome, send  # httpx: off the start-up path

    session, settings, claimed = kernel.db, internals(kernel).settings, uuid.UUID(delivery_id)
    config = settings.webhooks
    now = datetime.now(UTC)
    claim = now + timedelta(seconds=config.timeout_s + CLAIM_MARGIN_S)
    result: Any = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=claim)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return
    row = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id == claimed)
        )
    ).first()
    if row is None:  # pragma: no cover - foreign keys cascade; nothing left to deliver
        return
    delivery, endpoint, event = row
    if not endpoint.enabled and event.type != "webhook.test":
        outcome = Outcome(ok=False, error="the endpoint is disabled")
        _record(delivery, outcome, now, config, final=True)
        return
    secret = unseal(endpoint.secret_sealed, secret_key(settings))
    url, payload = endpoint.url, event.payload
    # Commit the claim before the HTTP attempt (see the module docstring for what that means
    # on each database): a duplicate task now finds no work.
    await session.commit()
    outcome = await send(
        url,
        payload,
        secret,
        config,
        {
            "Backplane-Event-Id": str(event.id),
            "Backplane-Event-Type": event.type,
            "Backplane-Delivery-Id": str(delivery.id),
        },
    )
    _record(delivery, outcome, datetime.now(UTC), config)
    await session.flush()


def _record(
    delivery: WebhookDelivery,
    outcome: Outcome,
    at: datetime,
    config: WebhookSettings,
    *,
    final: bool = False,
) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = at
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    delivery.last_response_body = outcome.body
    if outcome.ok:
        delivery.status, delivery.next_attempt_at, delivery.completed_at = SUCCEEDED, None, at
    elif final or delivery.attempts >= config.max_attempts:
        delivery.status, delivery.next_attempt_at, delivery.completed_at = FAILED, None, at
    else:
        delivery.next_attempt_at = at + backoff(config, delivery.attempts)


async def dispatch_webhooks(kernel: Kernel) -> None:
    """Task (every minute): queue every tenant's due deliveries (retries, lapsed claims)."""
    reason = "webhook dispatcher queues due deliveries of every tenant"
    async with maintenance_session(kernel, reason) as session:
        tasks = internals(kernel).tasks.queue_for(session)
        await dispatch_due(session, tasks, kernel.settings.webhooks)


async def dispatch_due(session: AsyncSession, tasks: TaskQueue, config: WebhookSettings) -> int:
    """Add a delivery task for each due pending delivery, oldest first; return how many.

    ``session`` sees every tenant (a maintenance session)."""
    rows = (
        await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.tenant_id)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= datetime.now(UTC),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(config.dispatch_batch)
        )
    ).all()
    for delivery_id, tenant_id in rows:
        tasks.enqueue_for(tenant_id, DELIVER_TASK, str(delivery_id))
    await session.flush()
    return len(rows)
