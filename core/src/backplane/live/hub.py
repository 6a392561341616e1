"""The process's live-events hub: channels of tenants and users, publishing, stream limits.

A tenant's stream (``t:<tenant>``) reaches every member of the tenant who listens; a user's
stream (``u:<tenant>:<user>``) reaches that user only, and only while acting for that tenant.
A client's position is one SSE id naming its place in both: ``<tenant id>_<user id>``
(:class:`Cursor`), so one ``Last-Event-ID`` resumes both streams.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from backplane.live._backend import START, Listener, LiveBackend, parse_id
from backplane.settings import Settings

log = logging.getLogger(__name__)


class StreamLimitError(RuntimeError):
    """Too many open streams for a tenant or a user in this process."""


class LiveEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What a client receives as an event's data (JSON); ``type`` is also its SSE event name."""

    type: str
    data: dict[str, Any]
    scope: str
    """``tenant`` (every member's stream) or ``user`` (one user's own)."""
    published_at: datetime


def tenant_channel(tenant_id: uuid.UUID) -> str:
    return f"t:{tenant_id.hex}"


def user_channel(tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"u:{tenant_id.hex}:{user_id.hex}"


class Cursor(msgspec.Struct, frozen=True):
    """Where a client is in its tenant's and its own stream: the SSE event id."""

    tenant: str = START
    user: str = START

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``<tenant id>_<user id>``, as sent in ``Last-Event-ID``; ValueError if not."""
        tenant, sep, user = text.strip().partition("_")
        try:
            parse_id(tenant)
            parse_id(user)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(
                f"Last-Event-ID {text[:80]!r} is not an id this stream sent (<ms>-<n>_<ms>-<n>)"
            )
        return cls(tenant, user)

    def __str__(self) -> str:
        return f"{self.tenant}_{self.user}"


@dataclass(eq=False)
class Admission:
    """One admitted stream: its inbox, and the count it holds until released (once)."""

    hub: LiveHub
    tenant_id: uuid.UUID
    subject: str
    listener: Listener
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.hub._release(self)


class LiveHub:
    """One per process (``Rails.live``): the backend, and the streams open in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.live
        url = settings.live.redis_url or settings.redis_url
        self.shared = url is not None
        """Events travel between processes (Redis)."""
        self.backend: LiveBackend
        if url is None:
            from backplane.live.memory import MemoryBackend

            self.backend = MemoryBackend(self.settings.history_events, self.settings.history_s)
        else:
            from backplane.live.redis_streams import RedisBackend

            self.backend = RedisBackend(url, self.settings.history_events, self.settings.history_s)
        self._per_tenant: Counter[uuid.UUID] = Counter()
        self._per_user: Counter[tuple[uuid.UUID, str]] = Counter()
        self._open: set[Listener] = set()
        self._publishing: set[asyncio.Task[str]] = set()
        self.closing = False

    def encode(
        self, event_type: str, data: dict[str, Any], *, user: bool, at: datetime | None = None
    ) -> bytes:
        """The stored payload; ValueError if not JSON-serialisable or over the size limit."""
        event = LiveEvent(
            type=event_type,
            data=data,
            scope="user" if user else "tenant",
            published_at=at or datetime.now(UTC),
        )
        try:
            payload = msgspec.json.encode(event)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ValueError(f"live event data must be JSON-serialisable: {exc}") from None
        if len(payload) > self.settings.max_event_bytes:
            raise ValueError(
                f"live event {event_type!r} is {len(payload)} bytes encoded; "
                f"live.max_event_bytes allows {self.settings.max_event_bytes}"
            )
        return payload

    async def publish(
        self, tenant_id: uuid.UUID, payload: bytes, user_id: uuid.UUID | None = None
    ) -> str:
        """Store and fan out an encoded event on the tenant's stream or the user's; its id."""
        channel = tenant_channel(tenant_id) if user_id is None else user_channel(tenant_id, user_id)
        return await self.backend.publish(channel, payload)

    def publish_soon(self, tenant_id: uuid.UUID, payload: bytes) -> None:
        """:meth:`publish` from synchronous code running on an event loop (a session's
        ``after_commit``): scheduled on that loop, awaited by :meth:`close`."""
        task = asyncio.get_running_loop().create_task(self.publish(tenant_id, payload))
        self._publishing.add(task)
        task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[str]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a live event could not be published: %s", task.exception())

    def admit(self, tenant_id: uuid.UUID, subject: str) -> Admission:
        """Count one more stream of ``subject`` (a user id, or a credential's id) acting for the
        tenant; :class:`StreamLimitError` beyond the per-process limits. The stream must call
        :meth:`Admission.release` when it ends, whatever ends it."""
        if self.closing:
            raise StreamLimitError("the server is shutting down; reconnect shortly")
        if self._per_tenant[tenant_id] >= self.settings.max_streams_per_tenant:
            raise StreamLimitError(
                f"this tenant has {self.settings.max_streams_per_tenant} open event streams "
                "(live.max_streams_per_tenant); close one first"
            )
        if self._per_user[(tenant_id, subject)] >= self.settings.max_streams_per_user:
            raise StreamLimitError(
                f"you have {self.settings.max_streams_per_user} open event streams "
                "(live.max_streams_per_user); close one first"
            )
        self._per_tenant[tenant_id] += 1
        self._per_user[(tenant_id, subject)] += 1
        admission = Admission(self, tenant_id, subject, Listener(self.settings.backlog_events))
        self._open.add(admission.listener)
        return admission

    def _release(self, admission: Admission) -> None:
        self._open.discard(admission.listener)
        self._per_tenant -= Counter({admission.tenant_id: 1})  # drops keys that reach zero
        self._per_user -= Counter({(admission.tenant_id, admission.subject): 1})

    def open_streams(self, tenant_id: uuid.UUID | None = None) -> int:
        """Streams open in this process (of one tenant)."""
        return len(self._open) if tenant_id is None else self._per_tenant[tenant_id]

    def drain(self) -> None:
        """End every open stream (the server is stopping); new ones are refused."""
        self.closing = True
        for listener in list(self._open):
            listener.deliver(None)

    async def close(self) -> None:
        self.drain()
        loop = asyncio.get_running_loop()
        mine = [task for task in self._publishing if task.get_loop() is loop]
        if mine:
            await asyncio.wait(mine, timeout=5)
        await self.backend.close()
