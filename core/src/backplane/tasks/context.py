"""How code enqueues work: the task queue of the transactional outbox (``kernel.tasks``).

An actor receives the :class:`backplane.Kernel` of its plugin, bound to the enqueuing tenant and
to the run's transaction (``kernel.db``, opened when first used), with ``kernel.message_id``
and ``kernel.attempt`` saying which delivery this is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.commits import after_commit
from backplane.db.tenancy import session_tenant
from backplane.tasks.models import DELAYED, PENDING, OutboxMessage


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

    async def enqueue_at(
        self, when: datetime, actor: Callable[..., Any] | str, *args: Any, **kwargs: Any
    ) -> uuid.UUID:
        """:meth:`enqueue` a task that must not start before ``when`` (an aware datetime).

        For work due at a known time (a scheduled send, the end of a wait): the row waits in
        the outbox as ``delayed`` and the relay hands it over once ``when`` has come (within
        ``tasks.relay_interval_s``), instead of a periodic job asking every tenant every minute
        whether something is due. A time already past enqueues at once. The task should still
        check, when it runs, that its work is due: the row it was for may have been changed or
        cancelled meanwhile (a rolled-back enqueue is never sent, as with :meth:`enqueue`)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"enqueue_at needs an aware datetime (with a timezone), got {when}")
        when = when.astimezone(UTC)  # SQLite keeps the wall time only: store all in UTC
        delayed = when if when > datetime.now(UTC) else None
        return self._add(session_tenant(self.session), actor, args, kwargs, delayed)

    def enqueue_for(
        self,
        tenant_id: uuid.UUID | None,
        actor: Callable[..., Any] | str,
        *args: Any,
        **kwargs: Any,
    ) -> uuid.UUID:
        """:meth:`enqueue` for a task that runs for ``tenant_id`` rather than the session's
        tenant: for the kernel's own code whose session crosses tenants (a dispatcher)."""
        return self._add(tenant_id, actor, args, kwargs, None)

    def _add(
        self,
        tenant_id: uuid.UUID | None,
        actor: Callable[..., Any] | str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        not_before: datetime | None,
    ) -> uuid.UUID:
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
            status=PENDING if not_before is None else DELAYED,
            not_before=not_before,
        )
        self.session.add(row)
        if self._on_commit is not None and not_before is None:
            after_commit(self.session, self._on_commit)  # the relay sends it once committed
        return row.id
