"""How code enqueues work: the task queue of the transactional outbox (``kernel.tasks``).

An actor receives the :class:`backplane.Kernel` of its plugin, bound to the enqueuing tenant and
to the run's transaction (``kernel.db``, opened when first used), with ``kernel.message_id``
and ``kernel.attempt`` saying which delivery this is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.commits import after_commit
from backplane.db.tenancy import session_tenant
from backplane.tasks.models import OutboxMessage


class UnknownTaskError(LookupError):
    """``enqueue`` named a function that no plugin registered through ``register_tasks``."""


class TaskQueue:
    """Enqueue tasks inside the caller's transaction (the transactional outbox).

    Injected into handlers as ``tasks``; nothing is sent if the transaction rolls back.
    """

    def __init__(
        self,
        session: AsyncSession,
        names: dict[Callable[..., Any], str],
        queues: dict[str, str],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self._names = names
        self._queues = queues
        self._on_commit = on_commit

    def name_of(self, actor: Callable[..., Any] | str) -> str:
        name = actor if isinstance(actor, str) else self._names.get(actor)
        if name is None or name not in self._queues:
            raise UnknownTaskError(f"{actor!r} is not a registered task")
        return name

    async def enqueue(
        self, actor: Callable[..., Any] | str, *args: Any, **kwargs: Any
    ) -> uuid.UUID:
        """Add a task to the caller's transaction; return its message id."""
        return self.enqueue_for(session_tenant(self.session), actor, *args, **kwargs)

    def enqueue_for(
        self,
        tenant_id: uuid.UUID | None,
        actor: Callable[..., Any] | str,
        *args: Any,
        **kwargs: Any,
    ) -> uuid.UUID:
        """:meth:`enqueue` for a task that runs for ``tenant_id`` rather than the session's
        tenant: for the kernel's own code whose session crosses tenants (a dispatcher)."""
        name = self.name_of(actor)
        try:
            msgspec.json.encode([args, kwargs])
        except TypeError as exc:
            raise TypeError(f"task {name} arguments must be JSON-serialisable: {exc}") from None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        # The id is chosen here and the row is not flushed: the caller's commit writes all the
        # rows of its transaction in one batched INSERT instead of one round trip per enqueue.
        row = OutboxMessage(
            id=uuid.uuid4(),
            actor=name,
            queue=self._queues[name],
            args=list(args),
            kwargs=dict(kwargs),
            context_tenant_id=tenant_id,
            trace_context=carrier,
        )
        self.session.add(row)
        if self._on_commit is not None:  # the relay sends the row once it is committed
            after_commit(self.session, self._on_commit)
        return row.id
