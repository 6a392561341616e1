"""What an actor receives, and how code enqueues work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
from opentelemetry import propagate
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from backplane.db.tenancy import TenantSession, session_tenant
from backplane.tasks.models import OutboxMessage


class TaskContext:
    """The first argument of every actor: a session bound to the enqueuing tenant, and which
    delivery this is. The kernel commits the actor's writes together with the task's done-mark
    when the actor returns; raising rolls everything back and retries.

    The session is opened on first use of :attr:`session`, so an actor that never touches the
    database costs no session (the task is still marked done when it returns).
    """

    __slots__ = (
        "_maintenance",
        "_open_session",
        "_session",
        "attempt",
        "message_id",
        "tenant_id",
    )

    def __init__(
        self,
        *,
        tenant_id: uuid.UUID | None,
        message_id: uuid.UUID,
        attempt: int,
        session: AsyncSession | None = None,
        open_session: Callable[[], AsyncSession] | None = None,
        maintenance: Callable[[str], AbstractAsyncContextManager[AsyncSession]] | None = None,
    ) -> None:
        if (session is None) == (open_session is None):
            raise TypeError("TaskContext needs exactly one of session and open_session")
        self.tenant_id = tenant_id
        self.message_id = message_id
        self.attempt = attempt
        """1 on the first delivery, 2 on the first retry, ..."""
        self._session = session
        self._open_session = open_session
        self._maintenance = maintenance

    @property
    def session(self) -> AsyncSession:
        """The tenant's session, in the transaction that marks this task done."""
        if self._session is None:
            assert self._open_session is not None
            self._session = self._open_session()
        return self._session

    def maintenance(self, reason: str) -> AbstractAsyncContextManager[AsyncSession]:
        """The kernel's own tasks only: a session that sees every tenant (on PostgreSQL the
        maintenance connection's, committed when the block ends; on SQLite this task's own,
        committed with it). ``reason`` goes to the audit log. Plugins' tasks work per tenant.
        """
        if self._maintenance is None:
            raise PermissionError("only the kernel's own tasks may act across tenants")
        return self._maintenance(reason)

    @property
    def session_opened(self) -> bool:
        """Whether the actor used :attr:`session` (the kernel commits it only then)."""
        return self._session is not None

    def __repr__(self) -> str:
        return (
            f"TaskContext(tenant_id={self.tenant_id!r}, message_id={self.message_id!r}, "
            f"attempt={self.attempt!r})"
        )


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
            context_tenant_id=session_tenant(self.session),
            trace_context=carrier,
        )
        self.session.add(row)
        if self._on_commit is not None:
            self.session.sync_session.info[_ON_COMMIT] = self._on_commit
        return row.id


_ON_COMMIT = "backplane.tasks.on_commit"


@event.listens_for(TenantSession, "after_commit")
def _wake_relay(session: Session) -> None:
    """After a transaction that enqueued tasks commits, wake this process's relay."""
    callback = session.info.pop(_ON_COMMIT, None)
    if callback is not None:
        callback()
