"""The delivery tasks: ``core.deliver_mail`` (one attempt at one message) and
``core.dispatch_mail`` (every minute: queue the messages whose next attempt is due, and those a
dead worker left ``sending``).

**At most once across a worker's death.** A message is claimed (``sending``, phase
``connecting``, ``claimed_until`` past the attempt's time limit, ``attempts`` + 1) in a
transaction committed *before* the transport is touched, and the phase becomes
``handing_over`` in another committed transaction immediately before the step after which the
receiver may have accepted it (SMTP: before ``DATA``). Those commits are durable whatever
happens to the task's own transaction: on SQLite they commit the task's run (the task's outbox
row is done from then on, and the dispatcher is what retries), on PostgreSQL they go through a
session of their own, so a killed worker's rolled-back run cannot undo them. A later look at a
message still ``sending`` once its claim has lapsed (the dispatcher queues such messages)
therefore knows how far the dead attempt got:

- ``connecting``: the receiver cannot have accepted it (an SMTP server drops a transaction
  whose ``DATA`` never ended); it is sent again, as a retry;
- ``handing_over``: the receiver may have accepted it, and nobody recorded whether. It is
  **not** sent again: it becomes ``unconfirmed``, with a reason, for an operator to look at.

The trade-off, stated plainly: a worker killed in the ``handing_over`` window (the ``DATA``
transfer and the server's answer, plus the commit of ``sent``: milliseconds per message) loses
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
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.tenancy import bind_tenant
from backplane.kernel import Kernel, Rails, internals, maintenance_session
from backplane.mail.compose import domain_of
from backplane.mail.dkim import sign
from backplane.mail.models import (
    CONNECTING,
    FAILED,
    HANDING_OVER,
    QUEUED,
    SENDING,
    SENT,
    UNCONFIRMED,
    DkimKey,
    MailMessage,
)
from backplane.mail.service import DELIVER_TASK
from backplane.mail.transports import MailDeliveryError, MailEnvelope
from backplane.secret_key import secret_key
from backplane.settings import MailSettings
from backplane.tasks.context import TaskQueue

log = logging.getLogger(__name__)
CLAIM_MARGIN_S = 10.0
"""A claim outlasts the attempt's time limit by this much (room to record its outcome)."""
NOT_RESENT = "the server may have accepted it, so it is not sent again automatically"
DIED_HANDING_OVER = f"the worker died while handing the message over; {NOT_RESENT}"


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


async def _claim(session: AsyncSession, key: uuid.UUID, config: MailSettings) -> int | None:
    """Claim the message for an attempt; the attempt's number, or None (not due, taken, or a
    dead attempt's that is now ``unconfirmed``)."""
    now = datetime.now(UTC)
    lapsed = and_(MailMessage.status == SENDING, MailMessage.claimed_until < now)
    found: Any = await session.execute(
        update(MailMessage)
        .where(MailMessage.id == key, lapsed, MailMessage.phase == HANDING_OVER)
        .values(status=UNCONFIRMED, phase=None, claimed_until=None, last_error=DIED_HANDING_OVER)
        .execution_options(synchronize_session=False)
    )
    if found.rowcount:
        log.warning("mail %s: a dead attempt was handing it over; now unconfirmed", key)
        return None
    due = and_(MailMessage.status == QUEUED, MailMessage.next_attempt_at <= now)
    claimed: Any = await session.execute(
        update(MailMessage)
        .where(MailMessage.id == key, or_(due, and_(lapsed, MailMessage.phase == CONNECTING)))
        .values(
            status=SENDING,
            phase=CONNECTING,
            attempts=MailMessage.attempts + 1,
            claimed_until=now + timedelta(seconds=config.attempt_timeout_s + CLAIM_MARGIN_S),
        )
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return None
    attempt: int | None = await session.scalar(
        select(MailMessage.attempts).where(MailMessage.id == key)
    )
    return attempt


async def _envelope(session: AsyncSession, key: uuid.UUID, app_secret: str) -> MailEnvelope:
    message = await session.get(MailMessage, key)
    assert message is not None  # claimed just now
    data = message.data.encode("ascii")
    dkim_key = await session.get(DkimKey, domain_of(message.sender))
    if dkim_key is not None:
        data = await asyncio.to_thread(sign, data, dkim_key, app_secret)
    return MailEnvelope(
        sender=message.sender,
        recipients=tuple(message.recipients),
        data=data,
        message_id=message.message_id,
    )


async def deliver_mail(kernel: Kernel, message_id: str) -> None:
    """Task: claim, hand over and record one attempt at one message (for its tenant); nothing
    if it is not due (or not ours). Its retries are the message's own (``mail`` settings)."""
    rails, key = internals(kernel), uuid.UUID(message_id)
    config = rails.settings.mail
    async with _committed(kernel, rails) as session:
        attempt = await _claim(session, key, config)
        if attempt is None:
            return
        envelope = await _envelope(session, key, secret_key(rails.settings))
    mine = and_(
        MailMessage.id == key, MailMessage.status == SENDING, MailMessage.attempts == attempt
    )

    async def record(**values: Any) -> None:
        async with _committed(kernel, rails) as session:
            await session.execute(
                update(MailMessage)
                .where(mine)
                .values(claimed_until=None, phase=None, **values)
                .execution_options(synchronize_session=False)
            )

    assert kernel.tenant_id is not None  # a message's task runs for its tenant
    wait = await rails.mail.wait_before_sending(kernel.tenant_id)
    if wait:
        later = datetime.now(UTC) + timedelta(seconds=wait)
        await record(status=QUEUED, attempts=attempt - 1, next_attempt_at=later)
        return
    handing_over = False

    async def committing() -> None:
        nonlocal handing_over
        async with _committed(kernel, rails) as session:
            moved: Any = await session.execute(
                update(MailMessage)
                .where(mine)
                .values(phase=HANDING_OVER)
                .execution_options(synchronize_session=False)
            )
        if moved.rowcount != 1:
            raise MailDeliveryError("the claim on the message lapsed; another attempt has it")
        handing_over = True

    try:
        async with asyncio.timeout(config.attempt_timeout_s):
            await rails.mail.transport.deliver(envelope, committing)
    except MailDeliveryError as exc:  # a refusal, before or after the hand-over: definite
        await _failed(record, config, attempt, exc.reason, permanent=exc.permanent)
    except Exception as exc:  # noqa: BLE001 - whatever a transport raises is the outcome
        reason = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"the attempt took longer than {config.attempt_timeout_s} s"
        if handing_over:
            log.warning("mail %s: the hand-over failed without an answer (%s)", key, reason)
            await record(
                status=UNCONFIRMED, last_error=f"{reason} while handing it over; {NOT_RESENT}"
            )
        else:
            await _failed(record, config, attempt, reason, permanent=False)
    else:
        await record(status=SENT, sent_at=datetime.now(UTC), last_error=None)


async def _failed(
    record: Any, config: MailSettings, attempt: int, reason: str, *, permanent: bool
) -> None:
    if permanent or attempt >= config.max_attempts:
        await record(status=FAILED, last_error=reason, next_attempt_at=None)
    else:
        later = datetime.now(UTC) + backoff(config, attempt)
        await record(status=QUEUED, last_error=reason, next_attempt_at=later)


async def dispatch_mail(kernel: Kernel) -> None:
    """Task (every minute): queue every tenant's due messages (retries, lapsed claims)."""
    reason = "mail dispatcher queues due messages of every tenant"
    async with maintenance_session(kernel, reason) as session:
        tasks = internals(kernel).tasks.queue_for(session)
        await dispatch_due(session, tasks, kernel.settings.mail)


async def dispatch_due(session: AsyncSession, tasks: TaskQueue, config: MailSettings) -> int:
    """Add a delivery task for each due message, oldest first; how many. ``session`` sees
    every tenant (a maintenance session)."""
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
    for message_id, tenant_id in rows:
        tasks.enqueue_for(tenant_id, DELIVER_TASK, str(message_id))
    await session.flush()
    return len(rows)
