"""The webhooks API under ``/api/billing/webhooks``: a tenant's endpoints, their secrets,
test events and delivery history. Every query is tenant-scoped by the session; another
tenant's ids answer 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.models import from_row
from backplane.billing.webhooks.events import DELIVER_TASK, WEBHOOK_TEST, queue_deliveries
from backplane.billing.webhooks.models import (
    DELIVERY_STATUSES,
    FAILED,
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
)
from backplane.billing.webhooks.schemas import (
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    SecretOut,
)
from backplane.billing.webhooks.sealing import seal
from backplane.billing.webhooks.signing import new_secret
from backplane.billing.webhooks.urls import UrlRefusedError, check_url
from backplane.db.locks import lock_row
from backplane.events import new_event
from backplane.identity.auth import Principal, requires
from backplane.identity.models import Tenant
from backplane.kernel import Kernel
from backplane.ratelimit import check_rate, rate_limit
from backplane.secret_key import secret_key
from backplane.settings import Settings
from backplane.state import rails_of
from backplane.tasks.context import TaskQueue
from backplane.web import NO_CACHE, NO_STORE

Req = Request[Principal, Any, Any]
PERMISSION = "billing.webhooks.manage"


def _check_event_types(request: Req, event_types: list[str]) -> list[str]:
    known = sorted(rails_of(request).events.types)
    unknown = sorted(set(event_types) - set(known))
    if unknown:
        raise HTTPException(
            status_code=422,
            detail=f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(known)}",
        )
    return sorted(set(event_types))


async def _checked_url(request: Req, url: str, settings: Settings) -> str:
    """The normalised URL if it passes the SSRF rules; each check (a DNS lookup of a name the
    tenant chose) counts towards ``limits.webhook_url_checks_per_minute``."""
    await check_rate(request, "webhooks.url_check")
    try:
        return (await check_url(url, settings.webhooks)).url
    except UrlRefusedError as exc:
        raise HTTPException(status_code=422, detail=f"endpoint URL refused: {exc}") from None


async def _endpoint(db: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await db.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFoundException("no such webhook endpoint")
    return endpoint


async def _delivery(db: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await db.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFoundException("no such webhook delivery")
    return delivery


URL_RULES = (
    "The URL must use https and its host must resolve to public addresses only (checked now "
    "and before every delivery). Each URL check counts towards the tenant's "
    "`limits.webhook_url_checks_per_minute` (then 429)."
)


class WebhooksController(Controller):
    path = "/billing/webhooks"
    tags = ["billing"]
    guards = [requires(PERMISSION)]

    @post(
        "/",
        status_code=201,
        cache_control=NO_STORE,
        response_headers=NO_CACHE,
        summary="Register a webhook endpoint",
        description=URL_RULES + " A tenant has at most `webhooks.max_endpoints` endpoints (409).",
    )
    async def create(
        self,
        request: Req,
        data: JSONBody[EndpointIn],
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> EndpointCreated:
        event_types = _check_event_types(request, data.event_types)
        url = await _checked_url(request, data.url, settings)
        # The cap holds under concurrency: with the tenant's row locked before counting,
        # concurrent creations count one after another. The URL check (a DNS lookup) comes
        # first, so the lock (on SQLite: the database's write lock) is never held across it.
        await lock_row(db, Tenant, request.user.tenant_id)
        count = await db.scalar(select(func.count()).select_from(WebhookEndpoint)) or 0
        if count >= settings.webhooks.max_endpoints:
            raise HTTPException(
                status_code=409,
                detail=f"a tenant has at most {settings.webhooks.max_endpoints} webhook endpoints",
            )
        secret = new_secret()
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            url=url,
            event_types=event_types,
            description=data.description,
            enabled=data.enabled,
            secret_sealed=seal(secret, secret_key(rails_of(request).settings)),
            created_at=datetime.now(UTC),
        )
        db.add(endpoint)
        await db.flush()
        return from_row(EndpointCreated, endpoint, secret=secret)

    @get("/", summary="The tenant's webhook endpoints")
    async def list_endpoints(self, db: NamedDependency[AsyncSession]) -> list[EndpointOut]:
        rows = await db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at))
        return [from_row(EndpointOut, e) for e in rows]

    @get("/{endpoint_id:uuid}", summary="One webhook endpoint")
    async def get_endpoint(
        self, endpoint_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> EndpointOut:
        return from_row(EndpointOut, await _endpoint(db, endpoint_id))

    @patch("/{endpoint_id:uuid}", summary="Change a webhook endpoint", description=URL_RULES)
    async def update(
        self,
        request: Req,
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[EndpointPatch],
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> EndpointOut:
        endpoint = await _endpoint(db, endpoint_id)
        if data.url is not None:
            endpoint.url = await _checked_url(request, data.url, settings)
        if data.event_types is not None:
            endpoint.event_types = _check_event_types(request, data.event_types)
        for name in ("description", "enabled"):
            if (value := getattr(data, name)) is not None:
                setattr(endpoint, name, value)
        await db.flush()
        return from_row(EndpointOut, endpoint)

    @delete("/{endpoint_id:uuid}", status_code=204, summary="Remove an endpoint")
    async def remove(
        self, endpoint_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> None:
        """Its delivery history goes with it."""
        await db.delete(await _endpoint(db, endpoint_id))

    @post(
        "/{endpoint_id:uuid}/rotate-secret",
        status_code=200,
        cache_control=NO_STORE,
        response_headers=NO_CACHE,
        summary="Replace the secret",
    )
    async def rotate_secret(
        self, request: Req, endpoint_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> SecretOut:
        endpoint = await _endpoint(db, endpoint_id)
        secret = new_secret()
        endpoint.secret_sealed = seal(secret, secret_key(rails_of(request).settings))
        endpoint.secret_rotated_at = datetime.now(UTC)
        return SecretOut(id=endpoint.id, secret=secret)

    @post(
        "/{endpoint_id:uuid}/test",
        status_code=202,
        summary="Send a webhook.test event to this endpoint (even if disabled)",
        description="At most `limits.webhook_tests_per_minute` per tenant (then 429).",
        guards=[rate_limit("webhooks.test")],
    )
    async def send_test(
        self, request: Req, endpoint_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> DeliveryOut:
        endpoint = await _endpoint(kernel.db, endpoint_id)
        data = {"endpoint_id": str(endpoint.id), "message": "a test event from Backplane"}
        event = new_event(WEBHOOK_TEST, data, request.user.tenant_id)
        [delivery_id] = await queue_deliveries(kernel, event, [endpoint])
        return from_row(DeliveryOut, await _delivery(kernel.db, delivery_id))

    @get("/{endpoint_id:uuid}/deliveries", summary="Delivery history of an endpoint, newest first")
    async def deliveries(
        self,
        endpoint_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        status: Annotated[str | None, QueryParameter(name="status")] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=500)] = 100,
    ) -> list[DeliveryOut]:
        await _endpoint(db, endpoint_id)
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            if status not in DELIVERY_STATUSES:
                raise ClientException(
                    f"status must be one of {', '.join(DELIVERY_STATUSES)}, not {status!r}"
                )
            query = query.where(WebhookDelivery.status == status)
        rows = await db.scalars(query.order_by(WebhookDelivery.created_at.desc()).limit(limit))
        return [from_row(DeliveryOut, d) for d in rows]

    @get("/deliveries/{delivery_id:uuid}", summary="One delivery")
    async def get_delivery(
        self, delivery_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> DeliveryOut:
        return from_row(DeliveryOut, await _delivery(db, delivery_id))

    @post(
        "/deliveries/{delivery_id:uuid}/retry",
        status_code=202,
        summary="Attempt a failed delivery again now (with a fresh set of attempts)",
        description="At most `limits.webhook_retries_per_minute` per tenant (then 429).",
        guards=[rate_limit("webhooks.retry")],
    )
    async def retry(
        self,
        delivery_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        tasks: NamedDependency[TaskQueue],
    ) -> DeliveryOut:
        delivery = await _delivery(db, delivery_id)
        if delivery.status != FAILED:
            raise HTTPException(
                status_code=409,
                detail=f"only failed deliveries are retried (this one is {delivery.status})",
            )
        now = datetime.now(UTC)
        delivery.status, delivery.attempts = PENDING, 0
        delivery.next_attempt_at, delivery.completed_at = now, None
        await tasks.enqueue(DELIVER_TASK, str(delivery.id))
        await db.flush()
        return from_row(DeliveryOut, delivery)


ROUTES = [WebhooksController]
