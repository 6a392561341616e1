"""Sending a campaign: the outbox task ``marketing.campaign_send`` runs in chunks, each one
transaction, and hands on to the next run in that transaction.

First the recipients are made, ``recipients_batch`` contacts of the segment at a time in
contact-id order (``cursor``), one row per contact (unique per campaign). Then each run takes
pending recipients and, for each, renders the template and queues the message with the kernel's mail
service (``kernel.mail.send``: its row and delivery task join this transaction) and marks the
recipient ``sent``. A worker killed with ``kill -9`` mid-run loses the whole run (the
messages it queued included) and the task is delivered again: a recipient is marked ``sent``
exactly when its message exists, so nobody is written to twice and nobody is skipped. Delivery
itself is the kernel's (at most once across a crash of the delivering worker; see
``backplane.mail.delivery``).

The tenant's rate (``send_rate_per_minute``, over all its campaigns) bounds each run; when it
is spent the chain stops with ``next_run_at`` set to when the rate has room again, and
``marketing.campaign_tick``, queued for that moment (:mod:`backplane_marketing.wakeups`),
resumes it; the tick also starts scheduled campaigns, queued for their time by the send
request. Pausing or cancelling makes the next run stop; messages already queued go out.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from backplane import MailError
from backplane_marketing.campaigns.models import (
    PENDING,
    SCHEDULED,
    SENDING,
    SENT,
    SUPPRESSED,
    Campaign,
    CampaignLink,
    CampaignTemplate,
    Recipient,
    Suppression,
)
from backplane_marketing.campaigns.render import contact_context, render, track
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import Contact
from backplane_marketing.segment_store import segment_filter
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.wakeups import rate_frees_at, wake_at

SEND_TASK = "marketing.campaign_send"
TICK_TASK = "marketing.campaign_tick"
FAILED = "failed"
"""A recipient whose message could not be made (a template error for their data, an address
the mail service refuses): not retried."""
TRACKING = "/api/marketing/t"


def tracking_base(kernel: Any) -> str:
    """Where public tracking URLs of this tenant start (``mail.link_base_url``)."""
    base = str(kernel.settings.mail.link_base_url).rstrip("/")
    return f"{base}{TRACKING}/{kernel.tenant_id}"


def new_token() -> str:
    return secrets.token_urlsafe(24)


async def campaign_send(kernel: Any, campaign_id: str) -> None:
    """One run of a campaign's send (see the module docstring)."""
    db = kernel.db
    campaign = await db.scalar(
        select(Campaign).where(Campaign.id == uuid.UUID(campaign_id)).with_for_update()
    )
    if campaign is None or campaign.status != SENDING:
        return
    settings: MarketingSettings = kernel.plugin_settings
    if not campaign.materialised:
        await _make_recipients(kernel, campaign, settings)
        await kernel.tasks.enqueue(SEND_TASK, campaign_id)
        return
    now = datetime.now(UTC)
    since = now - timedelta(seconds=60)
    recent = await db.scalar(
        select(func.count()).select_from(Recipient).where(Recipient.sent_at > since)
    )
    room = min(settings.send_batch, settings.send_rate_per_minute - int(recent or 0))
    if room <= 0:
        campaign.next_run_at = await rate_frees_at(db, now)
        await wake_at(kernel, TICK_TASK, campaign.next_run_at)
        return
    query = (
        select(Recipient, Contact)
        .join(Contact, Contact.id == Recipient.contact_id)
        .where(Recipient.campaign_id == campaign.id, Recipient.state == PENDING)
        .order_by(Recipient.id)
        .limit(room)
    )
    rows = (await db.execute(query)).all()
    if not rows:
        campaign.status, campaign.finished_at = "finished", now
        return
    await _send_rows(kernel, campaign, rows, settings, now)
    campaign.next_run_at = None
    await kernel.tasks.enqueue(SEND_TASK, campaign_id)


async def _make_recipients(kernel: Any, campaign: Campaign, settings: MarketingSettings) -> None:
    db = kernel.db
    where = await segment_filter(db, campaign.segment_id, settings)
    size = settings.recipients_batch
    query = select(Contact.id).where(where).order_by(Contact.id).limit(size)
    if campaign.cursor is not None:
        query = query.where(Contact.id > campaign.cursor)
    ids = list(await db.scalars(query))
    if len(ids) < size:
        campaign.materialised = True
    if ids:
        campaign.cursor = ids[-1]
        db.add_all(
            Recipient(id=uuid.uuid4(), campaign_id=campaign.id, contact_id=i, token=new_token())
            for i in ids
        )
    await db.flush()


async def _send_rows(
    kernel: Any,
    campaign: Campaign,
    rows: list[Any],
    settings: MarketingSettings,
    now: datetime,
) -> None:
    db = kernel.db
    template = await db.get(CampaignTemplate, campaign.template_id)
    if template is None:  # pragma: no cover - the foreign key cascades
        raise MarketingError("the campaign's template is gone", 409)
    links = {
        link.url: link.token
        for link in await db.scalars(
            select(CampaignLink).where(CampaignLink.campaign_id == campaign.id)
        )
    }
    contact_ids = [contact.id for _, contact in rows]
    suppressed = set(
        await db.scalars(
            select(Suppression.contact_id).where(Suppression.contact_id.in_(contact_ids))
        )
    )
    base = tracking_base(kernel)
    mail = kernel.mail  # one for the run: it reads the tenant's sender identity once
    for recipient, contact in rows:
        if contact.id in suppressed or contact.consent == "withdrawn":
            recipient.state = SUPPRESSED
            continue
        await send_to(
            mail, base, recipient, contact, campaign.name, template.subject, template, links,
            settings, now,
        )  # fmt: skip
    await db.flush()


async def send_to(
    mail: Any,
    base: str,
    recipient: Any,
    contact: Any,
    campaign_name: str,
    subject: str,
    template: CampaignTemplate,
    links: dict[str, str],
    settings: MarketingSettings,
    now: datetime,
) -> None:
    """One recipient's message: ``template`` rendered for ``contact`` (with ``subject``), its
    links and opens tracked through the recipient's token, handed to the mail service with
    both RFC 8058 headers; the recipient's state records the outcome (campaigns and A/B tests
    alike)."""
    unsubscribe = f"{base}/u/{recipient.token}"
    context = contact_context(
        contact.email,
        contact.name,
        contact.attributes or {},
        unsubscribe_url=unsubscribe,
        campaign={"name": campaign_name},
    )
    try:
        message = render(
            subject, template.html, template.text, context, settings.max_rendered_chars
        )
        html = message.html
        if html is not None:
            clicks = {url: f"{base}/c/{recipient.token}/{token}" for url, token in links.items()}
            html = track(html, clicks, f"{base}/o/{recipient.token}")
        recipient.mail_id = await mail.send(
            contact.email,
            message.subject,
            message.text,
            html=html,
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
    except (MarketingError, MailError):
        recipient.state = FAILED
        return
    recipient.state, recipient.sent_at = SENT, now


async def campaign_tick(kernel: Any) -> None:
    """Per tenant, when woken (and every ten minutes as a safety net): start due scheduled
    campaigns and resume rate-limited ones."""
    now = datetime.now(UTC)
    db = kernel.db
    due = select(Campaign).where(
        or_(
            (Campaign.status == SCHEDULED) & (Campaign.scheduled_at <= now),
            (Campaign.status == SENDING) & (Campaign.next_run_at <= now),
        )
    )
    for campaign in await db.scalars(due.with_for_update()):
        if campaign.status == SCHEDULED:
            campaign.status, campaign.started_at = SENDING, now
        campaign.next_run_at = None
        await kernel.tasks.enqueue(SEND_TASK, str(campaign.id))
    await db.flush()


async def start_links(db: Any, campaign: Campaign, html: str) -> None:
    """Store the template's literal links as the campaign's tracked links."""
    from backplane_marketing.campaigns.render import links_of

    for url in links_of(html)[:200]:
        db.add(CampaignLink(campaign_id=campaign.id, token=new_token(), url=url[:2000]))
