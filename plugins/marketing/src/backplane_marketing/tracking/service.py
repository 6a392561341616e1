"""What a tracking token does, inside its tenant's session (so a token of one tenant, or a
link token of another campaign, finds nothing under another tenant: 404).

Opens and clicks are counted once per recipient (and once per link) with a conditional
``UPDATE``/``INSERT ... ON CONFLICT DO NOTHING``, so two requests at once count one. Clicks and
opens from a known scanner's User-Agent, or within ``bot_click_seconds`` of the message being
queued, are served but not counted. An unsubscribe suppresses the contact for every later
campaign; a bounce or complaint from the webhook does the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from backplane_marketing.campaigns.models import (
    CampaignLink,
    LinkClick,
    Recipient,
    Suppression,
)
from backplane_marketing.contacts import add_event
from backplane_marketing.dialect import insert_for
from backplane_marketing.errors import MarketingError
from backplane_marketing.settings import MarketingSettings


def is_bot(recipient: Recipient, user_agent: str, settings: MarketingSettings) -> bool:
    agent = user_agent.lower()
    if any(marker in agent for marker in settings.bot_user_agents):
        return True
    sent = recipient.sent_at
    if sent is None:
        return True  # no message was sent with this token: nothing to count
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return (datetime.now(UTC) - sent).total_seconds() < settings.bot_click_seconds


async def recipient_by_token(db: Any, token: str) -> Recipient:
    row = await db.scalar(select(Recipient).where(Recipient.token == token))
    if row is None:
        raise MarketingError("unknown or expired link", 404)
    assert isinstance(row, Recipient)
    return row


async def _first(db: Any, recipient: Recipient, column: Any, **values: Any) -> bool:
    """Set ``column`` to now if it is unset; whether this call set it."""
    changed: Any = await db.execute(
        update(Recipient)
        .where(Recipient.id == recipient.id, column.is_(None))
        .values({column.key: datetime.now(UTC)}, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)


async def record_open(db: Any, token: str, user_agent: str, settings: MarketingSettings) -> None:
    recipient = await recipient_by_token(db, token)
    if is_bot(recipient, user_agent, settings):
        return
    if await _first(db, recipient, Recipient.opened_at):
        add_event(db, recipient.contact_id, "opened", {"campaign_id": str(recipient.campaign_id)})


async def record_click(
    db: Any,
    tenant_id: uuid.UUID,
    token: str,
    link_token: str,
    user_agent: str,
    settings: MarketingSettings,
) -> str:
    """The stored URL to redirect to (404 when the pair of tokens is not this tenant's)."""
    recipient = await recipient_by_token(db, token)
    link = await db.scalar(
        select(CampaignLink).where(
            CampaignLink.campaign_id == recipient.campaign_id, CampaignLink.token == link_token
        )
    )
    if link is None:
        raise MarketingError("unknown or expired link", 404)
    if is_bot(recipient, user_agent, settings):
        return str(link.url)
    row = {
        "tenant_id": tenant_id,
        "recipient_id": recipient.id,
        "link_id": link.id,
        "contact_id": recipient.contact_id,
        "clicked_at": datetime.now(UTC),
    }
    added: Any = await db.execute(
        insert_for(db, LinkClick.__table__).values(row).on_conflict_do_nothing()
    )
    if added.rowcount:
        await _first(db, recipient, Recipient.clicked_at)
        data = {"campaign_id": str(recipient.campaign_id), "link": str(link.url)}
        add_event(db, recipient.contact_id, "clicked", data)
    return str(link.url)


async def suppress(
    db: Any,
    tenant_id: uuid.UUID,
    contact_id: uuid.UUID,
    reason: str,
    campaign_id: uuid.UUID | None = None,
) -> bool:
    """Suppress a contact (a stronger reason, bounced or complained, replaces unsubscribed);
    whether it was new."""
    row = {
        "tenant_id": tenant_id,
        "contact_id": contact_id,
        "reason": reason,
        "campaign_id": campaign_id,
        "created_at": datetime.now(UTC),
    }
    statement = insert_for(db, Suppression.__table__).values(row)
    if reason == "unsubscribed":
        statement = statement.on_conflict_do_nothing()
    else:
        statement = statement.on_conflict_do_update(
            index_elements=["contact_id"], set_={"reason": reason}
        )
    done: Any = await db.execute(statement)
    return bool(done.rowcount)


async def unsubscribe(db: Any, tenant_id: uuid.UUID, token: str) -> Recipient:
    recipient = await recipient_by_token(db, token)
    if await _first(db, recipient, Recipient.unsubscribed_at):
        await suppress(db, tenant_id, recipient.contact_id, "unsubscribed", recipient.campaign_id)
        data = {"campaign_id": str(recipient.campaign_id)}
        add_event(db, recipient.contact_id, "unsubscribed", data)
    return recipient
