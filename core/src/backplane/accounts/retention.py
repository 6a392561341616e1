"""Housekeeping of the mail and account-flow tables, run hourly by the kernel's own task:
finished messages, dead one-time tokens and old invitations, once ``mail.keep_history_s`` old.
Queued and ``sending`` messages are never deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.accounts.models import AccountToken, Invite
from backplane.kernel import Kernel, maintenance_session
from backplane.mail.models import FAILED, SENT, UNCONFIRMED, MailMessage
from backplane.settings import MailSettings


async def prune_mail_history(kernel: Kernel) -> None:
    """Task (hourly): delete what :func:`prune_mail` selects, for every tenant."""
    reason = "retention deletes every tenant's old mail and dead account links"
    async with maintenance_session(kernel, reason) as session:
        await prune_mail(session, kernel.settings.mail)


async def prune_mail(
    session: AsyncSession, config: MailSettings, now: datetime | None = None
) -> dict[str, int]:
    """The counts deleted; ``session`` sees every tenant (a maintenance session)."""
    now = now or datetime.now(UTC)
    before = now - timedelta(seconds=config.keep_history_s)
    counts: dict[str, int] = {}
    result: Any = await session.execute(
        delete(MailMessage).where(
            MailMessage.status.in_((SENT, FAILED, UNCONFIRMED)), MailMessage.created_at < before
        )
    )
    counts["messages"] = result.rowcount
    result = await session.execute(
        delete(AccountToken).where(
            or_(AccountToken.expires_at < now, AccountToken.used_at.is_not(None)),
            AccountToken.created_at < before,
        )
    )
    counts["tokens"] = result.rowcount
    result = await session.execute(delete(Invite).where(Invite.expires_at < before))
    counts["invites"] = result.rowcount
    return counts
