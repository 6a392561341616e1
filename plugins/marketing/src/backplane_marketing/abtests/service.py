"""Running an A/B test: the outbox task ``marketing.ab_send`` and the tick
``marketing.ab_tick``, queued for each due time (:mod:`backplane_marketing.wakeups`).

1. ``testing``: ``sample_percent`` of the segment's contacts, drawn at random, get recipient
   rows (the campaign's own, unique per contact) split evenly among the variants (an
   assignment row each); then each run queues up to ``send_batch`` of their messages with the
   kernel's mail service, each rendered with its variant's template and subject, and marks
   them ``sent`` in the same transaction (as :mod:`backplane_marketing.campaigns.send` does:
   a killed worker redoes a whole run, never half of one).
2. ``waiting``: ``wait_seconds`` after the last sample message was queued, the tick (or
   ``POST .../ab-test/decide``) picks the winner: the best rate of the metric (unique opens,
   or unique clicks, per message sent; ties go to the earlier variant).
3. ``sending_rest``: the segment's contacts that have no recipient row in this campaign get
   one (so nobody in the sample is written to twice) with the winner, and are sent to.
4. ``finished`` (the campaign too).

The tenant's ``send_rate_per_minute`` bounds each run as for campaigns; when it is spent the
chain stops with ``due_at`` set to when the rate has room again and the tick resumes it then.
A cancelled test or campaign stops at its next run.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select

from backplane_marketing.abtests.models import (
    CANCELLED,
    FINISHED,
    REST,
    SAMPLE,
    SENDING_REST,
    TESTING,
    WAITING,
    AbAssignment,
    AbTest,
    AbVariant,
)
from backplane_marketing.campaigns import models as campaign_models
from backplane_marketing.campaigns.models import (
    PENDING,
    SUPPRESSED,
    Campaign,
    CampaignLink,
    CampaignTemplate,
    Recipient,
    Suppression,
)
from backplane_marketing.campaigns.send import new_token, send_to, tracking_base
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import Contact
from backplane_marketing.segment_store import segment_filter
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.wakeups import rate_frees_at, wake_at

AB_TASK = "marketing.ab_send"
TICK_TASK = "marketing.ab_tick"
AB_READY, AB_RUNNING = "ab_ready", "ab_testing"
"""The campaign's status while its test is configured, and while it runs (the campaign's own
send, pause and resume do not apply to it then)."""


async def variants_of(db: Any, test: AbTest) -> list[AbVariant]:
    query = select(AbVariant).where(AbVariant.test_id == test.id).order_by(AbVariant.position)
    return list(await db.scalars(query))


async def ab_send(kernel: Any, test_id: str) -> None:
    """One run of a test's send (see the module docstring)."""
    db = kernel.db
    test = await db.scalar(select(AbTest).where(AbTest.id == uuid.UUID(test_id)).with_for_update())
    if test is None or test.state not in (TESTING, SENDING_REST):
        return
    campaign = await db.scalar(
        select(Campaign).where(Campaign.id == test.campaign_id).with_for_update()
    )
    if campaign is None or campaign.status != AB_RUNNING:
        test.state = CANCELLED
        return
    settings: MarketingSettings = kernel.plugin_settings
    variants = await variants_of(db, test)
    now = datetime.now(UTC)
    if test.state == TESTING and not test.sampled:
        await _make_sample(db, test, campaign, variants, settings)
        await kernel.tasks.enqueue(AB_TASK, test_id)
        return
    if test.state == SENDING_REST and not test.materialised:
        await _make_rest(db, test, campaign, settings)
        await kernel.tasks.enqueue(AB_TASK, test_id)
        return
    room = await _room(db, settings, now)
    if room <= 0:
        test.due_at = await rate_frees_at(db, now)
        await wake_at(kernel, TICK_TASK, test.due_at)
        return
    sent = await _send_pending(kernel, campaign, {v.id: v for v in variants}, settings, room, now)
    if sent:
        test.due_at = None
        await kernel.tasks.enqueue(AB_TASK, test_id)
    elif test.state == TESTING:
        test.state, test.due_at = WAITING, now + timedelta(seconds=test.wait_seconds)
        await wake_at(kernel, TICK_TASK, test.due_at)
    else:
        test.state = FINISHED
        campaign.status, campaign.finished_at = campaign_models.FINISHED, now


async def _room(db: Any, settings: MarketingSettings, now: datetime) -> int:
    since = now - timedelta(seconds=60)
    recent = await db.scalar(
        select(func.count()).select_from(Recipient).where(Recipient.sent_at > since)
    )
    return min(settings.send_batch, settings.send_rate_per_minute - int(recent or 0))


async def _add(
    db: Any, campaign: Campaign, pairs: list[tuple[uuid.UUID, uuid.UUID]], phase: str
) -> None:
    """Recipient rows for ``(contact id, variant id)`` pairs, then their assignments (the
    recipients flushed first: the assignments' foreign key names them)."""
    recipients = [
        Recipient(id=uuid.uuid4(), campaign_id=campaign.id, contact_id=c, token=new_token())
        for c, _ in pairs
    ]
    db.add_all(recipients)
    await db.flush()
    db.add_all(
        AbAssignment(recipient_id=r.id, variant_id=v, contact_id=r.contact_id, phase=phase)
        for r, (_, v) in zip(recipients, pairs, strict=True)
    )
    await db.flush()


async def _make_sample(
    db: Any,
    test: AbTest,
    campaign: Campaign,
    variants: list[AbVariant],
    settings: MarketingSettings,
) -> None:
    """The sample's recipients: ``sample_percent`` of the segment (rounded up, at least one a
    variant when the segment has that many), at random, dealt to the variants in turn."""
    where = await segment_filter(db, campaign.segment_id, settings)
    total = int(await db.scalar(select(func.count()).select_from(Contact).where(where)) or 0)
    size = min(total, max(len(variants), math.ceil(total * test.sample_percent / 100)))
    ids = list(
        await db.scalars(select(Contact.id).where(where).order_by(func.random()).limit(size))
    )
    random.SystemRandom().shuffle(ids)
    pairs = [(c, variants[i % len(variants)].id) for i, c in enumerate(ids)]
    await _add(db, campaign, pairs, SAMPLE)
    test.sampled = True


async def _make_rest(
    db: Any, test: AbTest, campaign: Campaign, settings: MarketingSettings
) -> None:
    """The next ``recipients_batch`` contacts of the segment without a recipient row in this
    campaign, in contact-id order, with the winner."""
    assert test.winner_id is not None
    where = await segment_filter(db, campaign.segment_id, settings)
    has_row = exists().where(
        Recipient.campaign_id == campaign.id, Recipient.contact_id == Contact.id
    )
    size = settings.recipients_batch
    query = select(Contact.id).where(where, ~has_row).order_by(Contact.id).limit(size)
    if test.cursor is not None:
        query = query.where(Contact.id > test.cursor)
    ids = list(await db.scalars(query))
    if len(ids) < size:
        test.materialised = True
    if ids:
        test.cursor = ids[-1]
    await _add(db, campaign, [(c, test.winner_id) for c in ids], REST)


async def _send_pending(
    kernel: Any,
    campaign: Campaign,
    variants: dict[uuid.UUID, AbVariant],
    settings: MarketingSettings,
    room: int,
    now: datetime,
) -> int:
    """Queue up to ``room`` pending messages; how many rows were handled (0: none left)."""
    db = kernel.db
    query = (
        select(Recipient, Contact, AbAssignment.variant_id)
        .join(Contact, Contact.id == Recipient.contact_id)
        .join(AbAssignment, AbAssignment.recipient_id == Recipient.id)
        .where(Recipient.campaign_id == campaign.id, Recipient.state == PENDING)
        .order_by(Recipient.id)
        .limit(room)
    )
    rows = (await db.execute(query)).all()
    if not rows:
        return 0
    template_ids = {v.template_id for v in variants.values()}
    templates = {
        t.id: t
        for t in await db.scalars(
            select(CampaignTemplate).where(CampaignTemplate.id.in_(template_ids))
        )
    }
    links = {
        link.url: link.token
        for link in await db.scalars(
            select(CampaignLink).where(CampaignLink.campaign_id == campaign.id)
        )
    }
    suppressed = set(
        await db.scalars(
            select(Suppression.contact_id).where(
                Suppression.contact_id.in_([contact.id for _, contact, _ in rows])
            )
        )
    )
    base = tracking_base(kernel)
    mail = kernel.mail
    for recipient, contact, variant_id in rows:
        if contact.id in suppressed or contact.consent == "withdrawn":
            recipient.state = SUPPRESSED
            continue
        variant = variants[variant_id]
        template = templates.get(variant.template_id)
        if template is None:  # pragma: no cover - the foreign key cascades
            raise MarketingError("a variant's template is gone", 409)
        subject = variant.subject or template.subject
        await send_to(
            mail, base, recipient, contact, campaign.name, subject, template, links, settings, now
        )
    await db.flush()
    return len(rows)


async def variant_numbers(db: Any, test: AbTest) -> dict[uuid.UUID, dict[str, int]]:
    """Per variant and phase: messages sent, unique opens, unique clicks (sample and rest)."""
    sent = func.count(Recipient.sent_at)
    query = (
        select(
            AbAssignment.variant_id,
            AbAssignment.phase,
            func.count(),
            sent,
            func.count(Recipient.opened_at),
            func.count(Recipient.clicked_at),
        )
        .join(Recipient, Recipient.id == AbAssignment.recipient_id)
        .where(Recipient.campaign_id == test.campaign_id)
        .group_by(AbAssignment.variant_id, AbAssignment.phase)
    )
    numbers: dict[uuid.UUID, dict[str, int]] = {}
    for variant_id, phase, recipients, n_sent, opened, clicked in (await db.execute(query)).all():
        row = numbers.setdefault(variant_id, {})
        row[f"{phase}_recipients"] = int(recipients)
        row[f"{phase}_sent"] = int(n_sent)
        row[f"{phase}_opened"] = int(opened)
        row[f"{phase}_clicked"] = int(clicked)
    return numbers


def rate(numbers: dict[str, int], metric: str) -> float:
    """The variant's sample rate of ``metric`` (per message sent; 0 with none sent)."""
    sent = numbers.get("sample_sent", 0)
    hits = numbers.get("sample_opened" if metric == "opens" else "sample_clicked", 0)
    return hits / sent if sent else 0.0


async def decide(kernel: Any, test: AbTest) -> AbVariant:
    """Pick the winner of a waiting test (best sample rate; ties: the earlier variant) and
    start sending it to the rest."""
    variants = await variants_of(kernel.db, test)
    numbers = await variant_numbers(kernel.db, test)
    winner = max(variants, key=lambda v: (rate(numbers.get(v.id, {}), test.metric), -v.position))
    now = datetime.now(UTC)
    test.winner_id, test.decided_at = winner.id, now
    test.state, test.due_at = SENDING_REST, None
    await kernel.tasks.enqueue(AB_TASK, str(test.id))
    await kernel.events.emit(
        "marketing.ab_test_decided",
        {
            "campaign_id": str(test.campaign_id),
            "winner": winner.label,
            "metric": test.metric,
        },
    )
    return winner


async def ab_tick(kernel: Any) -> None:
    """Per tenant, when woken (and every ten minutes as a safety net): decide tests whose
    wait is over, resume rate-stopped sends."""
    now = datetime.now(UTC)
    db = kernel.db
    due = select(AbTest).where(
        AbTest.state.in_((TESTING, WAITING, SENDING_REST)), AbTest.due_at <= now
    )
    for test in list(await db.scalars(due.with_for_update())):
        if test.state == WAITING:
            await decide(kernel, test)
        else:
            test.due_at = None
            await kernel.tasks.enqueue(AB_TASK, str(test.id))
    await db.flush()
