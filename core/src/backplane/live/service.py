"""``kernel.live``: publish a live event to the kernel view's tenant, or to one of its users.

Live events are notifications for connected clients (job progress, an import finished, a quota
reached), sent at once and kept only for a short resumption window. Platform events
(``kernel.events``) are the durable record: stored, delivered to webhooks, emitted in the
caller's transaction. The two meet where a platform event type says ``live=True``: its events
also reach the tenant's live stream, once their transaction commits
(:mod:`backplane.defaults.live`).
"""

from __future__ import annotations

import uuid
from typing import Any

from backplane.live.hub import LiveHub
from backplane.plugins import check_owned_name

RESERVED = "live."
"""Types of the stream's own messages (``live.gap``): nobody publishes them."""


class TenantLive:
    """Publishing for one plugin acting for one tenant (``kernel.live``)."""

    __slots__ = ("_hub", "_plugin", "_tenant_id")

    def __init__(self, hub: LiveHub, plugin: str, tenant_id: uuid.UUID) -> None:
        self._hub = hub
        self._plugin = plugin
        self._tenant_id = tenant_id

    async def publish(
        self, event_type: str, data: dict[str, Any], *, user_id: uuid.UUID | None = None
    ) -> str:
        """Send ``event_type`` (``<plugin>.<what>``, such as ``"documents.render_progress"``)
        with ``data`` (a JSON-serialisable dict, at most ``live.max_event_bytes`` encoded) to
        every open stream of the tenant, or with ``user_id`` to that user's streams only. Sent
        now, not at commit: for what a client should see while the work goes on. Returns the
        event's id in its stream. ValueError for a bad type or data."""
        check_owned_name(self._plugin, event_type, "live event type", "plugin.what_happened")
        if event_type.startswith(RESERVED):
            raise ValueError(f"live event types starting with {RESERVED!r} are the stream's own")
        if not isinstance(data, dict):
            raise ValueError(f"live event data must be a dict, got {type(data).__name__}")
        payload = self._hub.encode(event_type, data, user=user_id is not None)
        return await self._hub.publish(self._tenant_id, payload, user_id)
