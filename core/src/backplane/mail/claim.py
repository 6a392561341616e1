"""Claiming a batch of a tenant's due messages for one delivery task (see
:mod:`backplane.mail.delivery`): one transaction claims up to ``mail.delivery_batch`` of them,
so a burst of mail (a campaign) costs one claim per batch rather than one per message.

Candidates are the tenant's queued messages whose next attempt is due and its ``sending``
messages whose claim has lapsed, oldest first. On PostgreSQL they are locked with
``SKIP LOCKED``, so concurrent delivery tasks take disjoint batches instead of waiting on each
other; the claiming ``UPDATE`` re-checks the conditions in any case (SQLite has no row locks),
and only the rows it changed are this attempt's.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.mail.compose import domain_of
from backplane.mail.dkim import sign
from backplane.mail.models import (
    CONNECTING,
    HANDING_OVER,
    QUEUED,
    SENDING,
    UNCONFIRMED,
    DkimKey,
    MailMessage,
)
from backplane.mail.transports import MailEnvelope
from backplane.settings import MailSettings

log = logging.getLogger(__name__)
CLAIM_MARGIN_S = 10.0
"""A claim outlasts the batch's time limit by this much (room to record its outcome)."""
NOT_RESENT = "the server may have accepted it, so it is not sent again automatically"
DIED_HANDING_OVER = f"the worker died while handing the message over; {NOT_RESENT}"


@dataclass(frozen=True)
class Claimed:
    """One claimed message: its row id, the attempt's number (every later write is fenced on
    it) and what the transport receives."""

    key: uuid.UUID
    attempt: int
    envelope: MailEnvelope


async def claim_batch(
    session: AsyncSession, config: MailSettings, app_secret: str
) -> list[Claimed]:
    """Claim up to ``config.delivery_batch`` due messages of the session's tenant, oldest
    first (a dead attempt's message that was ``handing_over`` becomes ``unconfirmed``
    instead); the claimed ones with their envelopes, DKIM-signed where the domain has a key."""
    now = datetime.now(UTC)
    due = and_(MailMessage.status == QUEUED, MailMessage.next_attempt_at <= now)
    lapsed = and_(MailMessage.status == SENDING, MailMessage.claimed_until < now)
    candidates = (
        await session.execute(
            select(MailMessage.id, MailMessage.phase)
            .where(or_(due, lapsed))
            .order_by(MailMessage.created_at)
            .limit(config.delivery_batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    dead = [key for key, phase in candidates if phase == HANDING_OVER]
    if dead:
        await _unconfirm_dead(session, dead, now)
    others = [key for key, phase in candidates if phase != HANDING_OVER]
    if not others:
        return []
    claimed: Any = await session.execute(
        update(MailMessage)
        .where(
            MailMessage.id.in_(others),
            or_(due, and_(lapsed, MailMessage.phase == CONNECTING)),
        )
        .values(
            status=SENDING,
            phase=CONNECTING,
            attempts=MailMessage.attempts + 1,
            claimed_until=now + timedelta(seconds=config.attempt_timeout_s + CLAIM_MARGIN_S),
        )
        .returning(MailMessage.id)
        .execution_options(synchronize_session=False)
    )
    keys = [row[0] for row in claimed.all()]
    if not keys:
        return []
    return await _envelopes(session, keys, app_secret)


async def _unconfirm_dead(session: AsyncSession, keys: list[uuid.UUID], now: datetime) -> None:
    lapsed = and_(MailMessage.status == SENDING, MailMessage.claimed_until < now)
    found: Any = await session.execute(
        update(MailMessage)
        .where(MailMessage.id.in_(keys), lapsed, MailMessage.phase == HANDING_OVER)
        .values(status=UNCONFIRMED, phase=None, claimed_until=None, last_error=DIED_HANDING_OVER)
        .returning(MailMessage.id)
        .execution_options(synchronize_session=False)
    )
    for (key,) in found.all():
        log.warning("mail %s: a dead attempt was handing it over; now unconfirmed", key)


async def _envelopes(
    session: AsyncSession, keys: list[uuid.UUID], app_secret: str
) -> list[Claimed]:
    rows = (
        await session.execute(
            select(
                MailMessage.id,
                MailMessage.attempts,
                MailMessage.sender,
                MailMessage.recipients,
                MailMessage.data,
                MailMessage.message_id,
            )
            .where(MailMessage.id.in_(keys))
            .order_by(MailMessage.created_at)
        )
    ).all()
    dkim_keys: dict[str, DkimKey | None] = {}
    claimed = []
    for key, attempt, sender, recipients, text, message_id in rows:
        data = text.encode("ascii")
        domain = domain_of(sender)
        if domain not in dkim_keys:
            dkim_keys[domain] = await session.get(DkimKey, domain)
        dkim_key = dkim_keys[domain]
        if dkim_key is not None:
            data = await asyncio.to_thread(sign, data, dkim_key, app_secret)
        envelope = MailEnvelope(
            sender=sender, recipients=tuple(recipients), data=data, message_id=message_id
        )
        claimed.append(Claimed(key=key, attempt=int(attempt), envelope=envelope))
    return claimed
