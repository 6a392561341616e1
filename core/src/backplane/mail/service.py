"""``kernel.mail``: compose a message as the tenant and queue it in the caller's transaction.

The message row and its delivery task are written with the caller's other rows: a rolled-back
request sends nothing and a committed one cannot lose its mail. Delivery happens in a task
(:mod:`backplane.mail.delivery`), never inside the request.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.throttle import Throttle, ThrottleSettings, make_throttle
from backplane.mail.compose import Composed, compose_bytes, parse_from
from backplane.mail.models import QUEUED, MailMessage, MailSender
from backplane.mail.transports import (
    Transport,
    check_transport,
    collect_transports,
    open_transport,
)
from backplane.plugins import KERNEL_PLUGIN, PluginSet
from backplane.settings import MailSettings, Settings
from backplane.tasks.context import TaskQueue

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DELIVER_TASK = f"{KERNEL_PLUGIN}.deliver_mail"
RATE_WINDOW_S = 60


class MailRails:
    """The process's mail machinery: the transport (opened when first used) and the tenants'
    sending rate (one counter store per event loop: a Redis client belongs to the loop that
    made it, and tasks run on a loop of their own)."""

    def __init__(self, settings: Settings, plugins: PluginSet) -> None:
        self.settings = settings
        self._transports = collect_transports(plugins)
        check_transport(self._transports, settings)  # a typo stops start-up, not the first mail
        self._transport: Transport | None = None
        self._throttles: dict[int, Throttle] = {}

    def __repr__(self) -> str:
        return f"MailRails(transport={self.settings.mail.transport!r})"

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = open_transport(self._transports, self.settings)
        return self._transport

    async def wait_before_sending(self, tenant_id: uuid.UUID) -> int:
        """Count one message of the tenant against ``mail.max_per_minute``: 0 when it may go
        now, else the seconds to wait (the message is not counted then)."""
        loop = id(asyncio.get_running_loop())
        throttle = self._throttles.get(loop)
        if throttle is None:
            limit = ThrottleSettings(
                max_attempts=self.settings.mail.max_per_minute, window_s=RATE_WINDOW_S
            )
            throttle = self._throttles[loop] = make_throttle(self.settings.redis_url, limit)
        key = f"mail:{tenant_id}"
        decision = await throttle.hit(key)
        if decision.allowed:
            return 0
        await throttle.forget(key, decision)
        return max(1, decision.retry_after_s)

    async def aclose(self) -> None:
        throttles, self._throttles = list(self._throttles.values()), {}
        for throttle in throttles:
            await throttle.aclose()


async def sender_of(
    session: AsyncSession, tenant_id: uuid.UUID, config: MailSettings
) -> tuple[tuple[str, str], str | None]:
    """The tenant's ``(display name, From address)`` and Reply-To (the default From when it
    has no sender identity). Tenant named explicitly: works in a maintenance session too."""
    row = await session.scalar(select(MailSender).where(MailSender.tenant_id == tenant_id))
    if row is None:
        return parse_from(config.default_from), None
    return (row.from_name, row.from_address), row.reply_to


_TASKS_OF_TRANSACTION = "backplane.mail.delivery_tasks"


def _needs_task(session: AsyncSession, tenant_id: uuid.UUID, batch: int) -> bool:
    """Whether a message queued now needs a delivery task of its own: the first of every
    ``batch`` messages a transaction queues for a tenant does (a delivery task claims up to
    ``batch`` due messages of its tenant, oldest first), so a campaign's run of 500 messages
    adds 10 tasks, not 500. Should a savepoint roll back the task but keep later messages, the
    per-minute dispatcher queues them."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    if transaction is None or batch <= 1:
        return True
    owner: object
    counts: dict[uuid.UUID, int]
    owner, counts = sync.info.get(_TASKS_OF_TRANSACTION, (None, {}))
    if owner is not transaction:
        counts = {}
        sync.info[_TASKS_OF_TRANSACTION] = (transaction, counts)
    queued = counts.get(tenant_id, 0)
    counts[tenant_id] = queued + 1
    return queued % batch == 0


async def queue_message(
    session: AsyncSession,
    tasks: TaskQueue,
    tenant_id: uuid.UUID,
    message: Composed,
    *,
    batch: int = 1,
) -> uuid.UUID:
    """Store a composed message of ``tenant_id`` and queue its delivery (no flush: the
    caller's commit writes both); the row's id. ``batch`` (``mail.delivery_batch``): one
    delivery task per that many messages of the transaction."""
    now = datetime.now(UTC)
    row = MailMessage(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        message_id=message.message_id,
        sender=message.sender,
        recipients=message.recipients,
        subject=message.subject,
        data=message.data.decode("ascii"),
        status=QUEUED,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    if _needs_task(session, tenant_id, batch):
        tasks.enqueue_for(tenant_id, DELIVER_TASK, str(row.id))
    return row.id


class TenantMail:
    """``kernel.mail``: send mail as the kernel view's tenant, in its session's transaction."""

    def __init__(
        self, config: MailSettings, session: AsyncSession, tasks: TaskQueue, tenant_id: uuid.UUID
    ) -> None:
        self._config = config
        self._session = session
        self._tasks = tasks
        self._tenant_id = tenant_id
        self._sender: tuple[tuple[str, str], str | None] | None = None

    async def send(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str,
        *,
        html: str | None = None,
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> uuid.UUID:
        """Compose a message from the tenant's sender identity (From, Reply-To unless given)
        and queue it; the message's id (``GET /api/mail/messages/{id}``). ``headers`` adds
        bulk-mail headers (``List-Unsubscribe``, ``List-Unsubscribe-Post``, ``List-Id``, ...:
        only those of ``backplane.mail.compose.EXTRA_HEADERS``, which DKIM signs too). Raises
        :class:`backplane.MailError` for a message that cannot be composed as asked."""
        if self._sender is None:  # read once per kernel.mail: a campaign sends many at once
            self._sender = await sender_of(self._session, self._tenant_id, self._config)
        sender, default_reply_to = self._sender
        recipients = [to] if isinstance(to, str) else list(to)
        message = compose_bytes(
            self._config,
            sender,
            reply_to or default_reply_to,
            recipients,
            subject,
            text,
            html,
            headers,
        )
        return await queue_message(
            self._session,
            self._tasks,
            self._tenant_id,
            message,
            batch=self._config.delivery_batch,
        )
