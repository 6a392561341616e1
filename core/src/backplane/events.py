"""Platform events: the one way kernel and plugin code says that something happened.

Types are registered (``register_event_types``: the kernel's ``quota.reached``,
``invoice.finalized`` and ``webhook.test``, and each plugin's own). ``kernel.events.emit(type,
data)`` builds an :class:`Event` and calls every plugin's ``event_emitted(kernel, event)`` in the
emitter's transaction, so a rolled-back action emits nothing and what subscribers write commits
with it. Billing webhooks are one such subscriber (``backplane.defaults.billing``): they store
the event and queue a delivery task per subscribed endpoint through ``kernel.tasks``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backplane._contract import EventType
from backplane.db.tenancy import session_tenant
from backplane.plugins import PluginSet, by_name, owned_items


class UnknownEventTypeError(ValueError):
    """``emit`` named an event type no plugin registered."""


class Event(msgspec.Struct, frozen=True):
    """What subscribers receive; ``id`` is the same on every webhook delivery of the event."""

    id: uuid.UUID
    type: str
    created_at: datetime
    tenant_id: uuid.UUID
    data: dict[str, Any]

    def envelope(self) -> bytes:
        """The JSON body webhooks deliver: ``{"id", "type", "created_at", "tenant_id", "data"}``."""
        return msgspec.json.encode(
            {
                "id": str(self.id),
                "type": self.type,
                "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "tenant_id": str(self.tenant_id),
                "data": self.data,
            }
        )


def new_event(event_type: str, data: dict[str, Any], tenant_id: uuid.UUID) -> Event:
    """An event (not yet emitted); :class:`ValueError` if ``data`` is not JSON-serialisable."""
    event = Event(uuid.uuid4(), event_type, datetime.now(UTC), tenant_id, data)
    try:
        event.envelope()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"event data must be JSON-serialisable: {exc}") from None
    return event


_items = owned_items(EventType, "register_event_types", lambda t: t.name, "area.what_happened")


def collect_event_types(plugins: PluginSet) -> dict[str, EventType]:
    return by_name(plugins.collect("register_event_types", _items), lambda t: t.name, "event type")


Notify = Callable[..., Awaitable[Any]]


class Events:
    """The process's event types and the call to their subscribers (one per process)."""

    def __init__(self, types: dict[str, EventType], notify: Notify) -> None:
        self.types = types
        self._notify = notify

    async def emit(
        self,
        session: AsyncSession,
        event_type: str,
        data: dict[str, Any],
        *,
        tenant_id: uuid.UUID | None = None,
    ) -> Event:
        """Emit an event of the session's tenant (or ``tenant_id``, for kernel code whose
        session crosses tenants) in the session's transaction; nothing is committed here."""
        if event_type not in self.types:
            known = ", ".join(sorted(self.types))
            raise UnknownEventTypeError(f"unknown event type {event_type!r}; known: {known}")
        tenant = tenant_id or session_tenant(session)
        if tenant is None:
            raise ValueError("an event needs a tenant: bind the session or pass tenant_id")
        event = new_event(event_type, data, tenant)
        await self._notify("event_emitted", session=session, tenant_id=tenant, event=event)
        return event


class TenantEvents:
    """``kernel.events``: emit on the kernel view's session and tenant."""

    __slots__ = ("_events", "_session")

    def __init__(self, events: Events, session: AsyncSession) -> None:
        self._events = events
        self._session = session

    async def emit(self, event_type: str, data: dict[str, Any]) -> Event:
        """Emit ``event_type`` with ``data`` (JSON-serialisable) in this transaction."""
        return await self._events.emit(self._session, event_type, data)
