"""Live events: per-tenant and per-user streams of notifications over Server-Sent Events.

``kernel.live.publish(type, data, user_id=None)`` (:class:`~backplane.live.service.TenantLive`)
sends an event to every open ``GET /api/events`` stream of the tenant, or of one user in it;
the hub (:class:`~backplane.live.hub.LiveHub`, one per process) keeps recent events for
``Last-Event-ID`` resumption, in memory or in Redis streams shared by every process
(``live.redis_url``). Not to be confused with platform events (:mod:`backplane.events`):
those are durable, transactional and delivered to webhooks; a platform event type marked
``live=True`` is also sent live once its transaction commits.
"""

from __future__ import annotations

from backplane.live._backend import LiveUnavailableError
from backplane.live.hub import Cursor, LiveEvent, LiveHub, StreamLimitError
from backplane.live.service import TenantLive

__all__ = [
    "Cursor",
    "LiveEvent",
    "LiveHub",
    "LiveUnavailableError",
    "StreamLimitError",
    "TenantLive",
]
