"""The delivery tasks: ``core.deliver_mail`` (one attempt at each of a batch of a tenant's due
messages) and ``core.dispatch_mail`` (every minute: queue the messages whose next attempt is
due, and those a dead worker left ``sending``).

**Batches.** Each queued message has its delivery task, but a task claims up to
``mail.delivery_batch`` due messages of its tenant at once (:mod:`backplane.mail.claim`, one
transaction) and hands them over one after another through one transport connection (SMTP: one
connection, one SMTP transaction per message); a message's outcome is written in the same
commit as the next message's hand-over (or at the batch's end). The tasks of messages another
batch took find nothing due and end. The batch shares one time limit,
``mail.attempt_timeout_s`` (its claims outlast it); messages it has no time left for are put
back, their attempt uncounted. Everything below holds per message.

**At most once across a worker's death.** A message is claimed (``sending``, phase
``connecting``, ``claimed_until`` past the attempt's time limit, ``attempts`` + 1) in a
transaction committed *before* the transport is touched, and the phase becomes
``handing_over`` in another committed transaction immediately before the step after which the
receiver may have accepted it (SMTP: before ``DATA``). Those commits are durable whatever
happens to the task's own transaction: on SQLite they commit the task's run (the task's outbox
row is done from then on, and the dispatcher is what retries), on PostgreSQL they go through a
session (the claim) or a connection (the batch's hand-overs and outcomes) of their own, so a
killed worker's rolled-back run cannot undo them. A later look at a
message still ``sending`` once its claim has lapsed (the dispatcher queues such messages)
therefore knows how far the dead attempt got:

- ``connecting``: the receiver cannot have accepted it (an SMTP server drops a transaction
  whose ``DATA`` never ended); it is sent again, as a retry;
- ``handing_over``: the receiver may have accepted it, and nobody recorded whether. It is
  **not** sent again: it becomes ``unconfirmed``, with a reason, for an operator to look at.

The trade-off, stated plainly: a worker killed in the ``handing_over`` window (the ``DATA``
transfer and the server's answer, plus, in a batch, the next message's ``MAIL``/``RCPT`` and
the commit that records ``sent``: milliseconds per message) loses
the confirmation, and a message the server did *not* accept in that window is not retried
either. That is chosen over the alternative (resending, so a crash may deliver twice): a
duplicate invitation or password reset cannot be taken back; an ``unconfirmed`` one is visible
(``backplane mail status``) and can be sent again deliberately. A definite answer from the
server (a 4xx/5xx reply to ``DATA``) is not ambiguous and is retried or failed as usual. A
worker frozen (not dead) longer than ``mail.attempt_timeout_s`` plus a margin could see its
claim taken over; every later write of an attempt is fenced on its ``attempts`` number, so it
cannot overwrite the newer attempt's record, but it may still hand over its copy.

Retries: a refusal or an unreachable server leaves the message ``queued`` with a
``next_attempt_at`` after ``mail.backoff_s`` (doubling, capped); after ``mail.max_attempts`` it
is ``failed`` with the last reason. A 5xx answer fails it at once. A tenant over
``mail.max_per_minute`` has its message put back, uncounted, until the window allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backplane.db.tenancy import SET_TENANT, bind_tenant
from backplane.kernel import Kernel, Rails, internals, maintenance_session
from backplane.mail.claim import NOT_RESENT, Claimed, claim_batch
from backplane.mail.models import (
    FAILED,
    HANDING_OVER,
    QUEUED,
    SENDING,
    SENT,
    UNCONFIRMED,
    MailMessage,
)
from backplane.mail.service import DELIVER_TASK
from backplane.mail.transports import MailDeliveryError, Transport, opened
from backplane.secret_key import secret_key
from backplane.settings import MailSettings
from backplane.tasks.context import TaskQueue

log = logging.getLogger(__name__)


def backoff(config: MailSettings, attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: ``backoff_s`` doubling, capped."""
    seconds = config.backoff_s * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, config.max_backoff_s))


@contextlib.asynccontextmanager
async def _committed(kernel: Kernel, rails: Rails) -> AsyncIterator[AsyncSession]:
    """A transaction of the task's tenant that is durable when the block ends (see the module
    docstring): SQLite, the task's own session, committed; PostgreSQL, a session of its own."""
    if rails.settings.resolved_database_url().startswith("sqlite"):
        session = kernel.db
        yield session
        await session.commit()
        return
    async with rails.database.sessions() as own:
        bind_tenant(own, kernel.tenant_id)
        async with own.begin():
            yield own


_TABLE: Any = MailMessage.__table__
_MINE = and_(
    _TABLE.c.id == bindparam("key"),
    _TABLE.c.status == SENDING,
    _TABLE.c.attempts == bindparam("attempt"),
)
"""This attempt's row, still ``sending``: every write of an attempt is fenced on it."""
_TO_HANDING_OVER = update(_TABLE).where(_MINE).values(phase=HANDING_OVER)


@functools.cache
def _outcome(names: tuple[str, ...]) -> Any:
    """The fenced UPDATE writing an outcome with these columns (built once per set of columns:
    a batch writes one per message, and building a statement costs more than running it)."""
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
    return update(_TABLE).where(_MINE).values(claimed_until=None, phase=None, **values)


class _Outcomes:
    """A batch's attempts' outcomes, written with the batch's next committed transaction (the
    next message's hand-over, or the batch's end): one commit per message, not two.

    On PostgreSQL those transactions run on one connection of the batch's own (not the task's:
    see the module docstring), each binding the tenant for row-level security as a tenant
    session's transaction does; on SQLite they commit the task's session."""

    def __init__(self, kernel: Kernel, rails: Rails) -> None:
        self.kernel, self.rails = kernel, rails
        self._pending: list[tuple[Claimed, dict[str, Any]]] = []
        self._sqlite = rails.settings.resolved_database_url().startswith("sqlite")
        self._connection: AsyncConnection | None = None

    def add(self, message: Claimed, **values: Any) -> None:
        self._pending.append((message, values))

    @contextlib.asynccontextmanager
    async def _committed(self) -> AsyncIterator[AsyncSession | AsyncConnection]:
        if self._sqlite:
            session = self.kernel.db
            yield session
            await session.commit()
            return
        if self._connection is None:
            self._connection = await self.rails.database.engine.connect()
        connection = self._connection
        try:
            async with connection.begin():
                await connection.execute(SET_TENANT, {"tenant_id": str(self.kernel.tenant_id)})
                yield connection
        except BaseException:
            self._connection = None  # the next transaction takes a fresh connection
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def _write(self, target: AsyncSession | AsyncConnection) -> None:
        pending, self._pending = self._pending, []
        for message, values in pending:
            params = {f"v_{name}": value for name, value in values.items()}
            await target.execute(
                _outcome(tuple(values)),
                {"key": message.key, "attempt": message.attempt, **params},
            )

    async def commit(self) -> None:
        if self._pending:
            async with self._committed() as target:
                await self._write(target)

    async def handing_over(self, message: Claimed) -> None:
        """Write the earlier outcomes and move ``message`` to ``handing_over``, committed."""
        async with self._committed() as target:
            await self._write(target)
            moved: Any = await target.execute(
                _TO_HANDING_OVER, {"key": message.key, "attempt": message.attempt}
            )
        if moved.rowcount != 1:
            raise MailDeliveryError("the claim on the message lapsed; another attempt has it")

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


async def deliver_mail(kernel: Kernel, message_id: str) -> None:
    """Task: claim a batch of the tenant's due messages, oldest first (``message_id`` names the
    message it was queued with, the first of up to ``mail.delivery_batch`` queued in one
    transaction), hand them over through one transport connection and record each attempt.
    Retries are the messages' own (``mail`` settings)."""
    rails = internals(kernel)
    config = rails.settings.mail
    async with _committed(kernel, rails) as session:
        batch = await claim_batch(session, config, secret_key(rails.settings))
    if not batch:
        return
    assert kernel.tenant_id is not None  # a message's task runs for its tenant
    outcomes = _Outcomes(kernel, rails)
    deadline = asyncio.get_running_loop().time() + config.attempt_timeout_s
    try:
        async with opened(rails.mail.transport) as transport:
            for done, message in enumerate(batch):
                wait = await rails.mail.wait_before_sending(kernel.tenant_id)
                if wait or asyncio.get_running_loop().time() >= deadline:
                    _put_back(outcomes, batch[done:], wait)
                    break
                await _attempt(transport, message, outcomes, config, deadline)
    finally:
        try:
            await outcomes.commit()
        finally:
            await outcomes.aclose()


def _put_back(outcomes: _Outcomes, messages: list[Claimed], wait: int) -> None:
    """Messages the batch did not try (over the tenant's rate, or out of time): queued again,
    the attempt not counted."""
    later = datetime.now(UTC) + timedelta(seconds=wait)
    for message in messages:
        outcomes.add(message, status=QUEUED, attempts=message.attempt - 1, next_attempt_at=later)


async def _attempt(
    transport: Transport,
    message: Claimed,
    outcomes: _Outcomes,
    config: MailSettings,
    deadline: float,
) -> None:
    handing_over = False

    async def committing() -> None:
        nonlocal handing_over
        await outcomes.handing_over(message)
        handing_over = True

    try:
        async with asyncio.timeout_at(deadline):
            await transport.deliver(message.envelope, committing)
    except MailDeliveryError as exc:  # a refusal, before or after the hand-over: definite
        _failed(outcomes, message, config, exc.reason, permanent=exc.permanent)
    except Exception as exc:  # noqa: BLE001 - whatever a transport raises is the outcome
        reason = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"the attempt took longer than {config.attempt_timeout_s} s"
        if handing_over:
            log.warning("mail %s: the hand-over failed without an answer (%s)", message.key, reason)
            outcomes.add(
                message,
                status=UNCONFIRMED,
                last_error=f"{reason} while handing it over; {NOT_RESENT}",
            )
        else:
            _failed(outcomes, message, config, reason, permanent=False)
    else:
        outcomes.add(message, status=SENT, sent_at=datetime.now(UTC), last_error=None)


def _failed(
    outcomes: _Outcomes, message: Claimed, config: MailSettings, reason: str, *, permanent: bool
) -> None:
    if permanent or message.attempt >= config.max_attempts:
        outcomes.add(message, status=FAILED, last_error=reason, next_attempt_at=None)
    else:
        later = datetime.now(UTC) + backoff(config, message.attempt)
        outcomes.add(message, status=QUEUED, last_error=reason, next_attempt_at=later)


async def dispatch_mail(kernel: Kernel) -> None:
    """Task (every minute): queue every tenant's due messages (retries, lapsed claims)."""
    reason = "mail dispatcher queues due messages of every tenant"
    async with maintenance_session(kernel, reason) as session:
        tasks = internals(kernel).tasks.queue_for(session)
        await dispatch_due(session, tasks, kernel.settings.mail)


async def dispatch_due(session: AsyncSession, tasks: TaskQueue, config: MailSettings) -> int:
    """Add delivery tasks for the due messages, oldest first: one per ``delivery_batch`` of a
    tenant's (each task claims that many); how many messages are due. ``session`` sees every
    tenant (a maintenance session)."""
    now = datetime.now(UTC)
    due = and_(MailMessage.status == QUEUED, MailMessage.next_attempt_at <= now)
    lapsed = and_(MailMessage.status == SENDING, MailMessage.claimed_until < now)
    rows = (
        await session.execute(
            select(MailMessage.id, MailMessage.tenant_id)
            .where(or_(due, lapsed))
            .order_by(MailMessage.created_at)
            .limit(config.dispatch_batch)
        )
    ).all()
    counts: dict[Any, int] = {}
    for message_id, tenant_id in rows:
        seen = counts[tenant_id] = counts.get(tenant_id, 0) + 1
        if (seen - 1) % config.delivery_batch == 0:
            tasks.enqueue_for(tenant_id, DELIVER_TASK, str(message_id))
    await session.flush()
    return len(rows)
