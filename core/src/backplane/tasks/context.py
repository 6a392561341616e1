"""What an actor receives, and how code enqueues work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.tenancy import session_tenant
from backplane.tasks.models import OutboxMessage


class TaskContext(msgspec.Struct, kw_only=True):
    """The first argument of every actor: a session bound to the enqueuing tenant, and which
    delivery this is. The kernel commits the session (and marks the task done) when the actor
    returns; raising rolls everything back and retries."""

    session: AsyncSession
    tenant_id: uuid.UUID | None
    message_id: uuid.UUID
    attempt: int
    """1 on the first delivery, 2 on the first retry, ..."""


class UnknownTaskError(LookupError):
    """``enqueue`` named a function that no plugin registered through ``register_tasks``."""


class TaskQueue:
    """Enqueue tasks inside the caller's transaction (the transactional outbox).

    Injected into handlers as ``tasks``; nothing is sent if the transaction rolls back.
    """

    def __init__(
        self, session: AsyncSession, names: dict[Callable[..., Any], str], queues: dict[str, str]
    ) -> None:
        self.session = session
        self._names = names
        self._queues = queues

    def name_of(self, actor: Callable[..., Any] | str) -> str:
        name = actor if isinstance(actor, str) else self._names.get(actor)
        if name is None or name not in self._queues:
            raise UnknownTaskError(f"{actor!r} is not a registered task")
        return name

    async def enqueue(
        self, actor: Callable[..., Any] | str, *args: Any, **kwargs: Any
    ) -> uuid.UUID:
        """Add a task to the caller's transaction; return its message id."""
        name = self.name_of(actor)
        try:
            msgspec.json.encode([args, kwargs])
        except TypeError as exc:
            raise TypeError(f"task {name} arguments must be JSON-serialisable: {exc}") from None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        row = OutboxMessage(
            actor=name,
            queue=self._queues[name],
            args=list(args),
            kwargs=dict(kwargs),
            context_tenant_id=session_tenant(self.session),
            trace_context=carrier,
        )
        self.session.add(row)
        await self.session.flush()
        return row.id
