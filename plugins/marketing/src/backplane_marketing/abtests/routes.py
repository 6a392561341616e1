"""``/api/marketing/campaigns/{campaign_id}/ab-test``: an A/B test of a draft campaign's
subject or content: configure (``PUT``; the campaign becomes ``ab_ready`` and its own
``send`` no longer applies), remove (``DELETE``, back to ``draft``), ``start``, ``decide``
(end the wait now), ``cancel``; ``GET`` shows the state, the winner and each variant's
numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from backplane import Kernel, requires
from backplane_marketing.abtests.models import (
    CANCELLED,
    READY,
    TESTING,
    WAITING,
    AbTest,
    AbVariant,
)
from backplane_marketing.abtests.service import (
    AB_READY,
    AB_RUNNING,
    AB_TASK,
    decide,
    rate,
    variant_numbers,
    variants_of,
)
from backplane_marketing.campaigns import models as campaign_models
from backplane_marketing.campaigns.models import DRAFT, CampaignLink
from backplane_marketing.campaigns.render import check_template, links_of
from backplane_marketing.campaigns.routes_campaigns import find_campaign
from backplane_marketing.campaigns.routes_templates import find_template
from backplane_marketing.campaigns.send import new_token
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.plugin import READ, WRITE
from backplane_marketing.settings import MarketingSettings


class VariantIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=998)] | None = None
    """A subject (sandboxed template) instead of the template's: a subject test."""
    template_id: uuid.UUID | None = None
    """Another template than the campaign's: a content test."""


class AbTestIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    metric: Literal["opens", "clicks"]
    sample_percent: Annotated[float, msgspec.Meta(gt=0, le=100)]
    """Of the segment, split evenly among the variants (100: no rest, a plain split test)."""
    wait_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86_400)]
    """From the last sample message queued to the decision."""
    variants: Annotated[list[VariantIn], msgspec.Meta(min_length=2, max_length=5)]


class VariantOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    label: str
    subject: str | None
    template_id: uuid.UUID
    sample_recipients: int
    sample_sent: int
    opened: int
    """Unique opens of the sample's messages."""
    clicked: int
    """Unique clicks of the sample's messages."""
    open_rate: float
    click_rate: float
    rest_sent: int
    """Messages sent to the rest of the segment (the winner only)."""
    winner: bool


class AbTestOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    campaign_id: uuid.UUID
    campaign_status: str
    state: str
    metric: str
    sample_percent: float
    wait_seconds: int
    due_at: datetime | None
    decided_at: datetime | None
    winner: str | None
    variants: list[VariantOut]


async def _test_of(db: object, campaign_id: uuid.UUID, *, lock: bool = False) -> AbTest:
    query = select(AbTest).where(AbTest.campaign_id == campaign_id)
    row = await db.scalar(query.with_for_update() if lock else query)  # type: ignore[attr-defined]
    if row is None:
        raise MarketingError(f"campaign {campaign_id} has no A/B test", 404)
    assert isinstance(row, AbTest)
    return row


async def _out(kernel: Kernel, test: AbTest, status: str) -> AbTestOut:
    variants = await variants_of(kernel.db, test)
    numbers = await variant_numbers(kernel.db, test)
    shown = []
    winner = None
    for v in variants:
        n = numbers.get(v.id, {})
        if v.id == test.winner_id:
            winner = v.label
        shown.append(
            VariantOut(
                id=v.id,
                label=v.label,
                subject=v.subject,
                template_id=v.template_id,
                sample_recipients=n.get("sample_recipients", 0),
                sample_sent=n.get("sample_sent", 0),
                opened=n.get("sample_opened", 0),
                clicked=n.get("sample_clicked", 0),
                open_rate=round(rate(n, "opens"), 4),
                click_rate=round(rate(n, "clicks"), 4),
                rest_sent=n.get("rest_sent", 0),
                winner=v.id == test.winner_id,
            )
        )
    return AbTestOut(
        id=test.id,
        campaign_id=test.campaign_id,
        campaign_status=status,
        state=test.state,
        metric=test.metric,
        sample_percent=test.sample_percent,
        wait_seconds=test.wait_seconds,
        due_at=test.due_at,
        decided_at=test.decided_at,
        winner=winner,
        variants=shown,
    )


class AbTestController(Controller):
    path = "/campaigns/{campaign_id:uuid}/ab-test"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @put("/", guards=[requires(WRITE)], status_code=200)
    async def configure(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[AbTestIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> AbTestOut:
        """Set the A/B test of a draft (or not yet started) campaign, replacing any."""
        db = kernel.db
        campaign = await find_campaign(db, campaign_id, lock=True)
        if campaign.status not in (DRAFT, AB_READY):
            raise MarketingError(
                f"the campaign is {campaign.status}; an A/B test needs it draft", 409
            )
        labels = [v.label for v in data.variants]
        if len(set(labels)) != len(labels):
            raise MarketingError("two variants have the same label", 422)
        keys = [(v.subject, v.template_id) for v in data.variants]
        if len(set(keys)) != len(keys):
            raise MarketingError("two variants are the same (subject and template)", 422)
        for variant in data.variants:
            if variant.template_id is not None:
                await find_template(db, variant.template_id)
            if variant.subject is not None:
                check_template(variant.subject, plugin_settings.max_template_chars, "subject")
        existing = await db.scalar(select(AbTest).where(AbTest.campaign_id == campaign.id))
        if existing is not None:
            await db.delete(existing)
            await db.flush()
        test = AbTest(
            campaign_id=campaign.id,
            metric=data.metric,
            sample_percent=data.sample_percent,
            wait_seconds=data.wait_seconds,
            state=READY,
            sampled=False,
            materialised=False,
        )
        db.add(test)
        await db.flush()
        for position, variant in enumerate(data.variants):
            db.add(
                AbVariant(
                    test_id=test.id,
                    label=variant.label,
                    position=position,
                    subject=variant.subject,
                    template_id=variant.template_id or campaign.template_id,
                )
            )
        campaign.status = AB_READY
        await db.flush()
        return await _out(kernel, test, campaign.status)

    @get("/", guards=[requires(READ)])
    async def show(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AbTestOut:
        """The test's state, its winner once decided, and each variant's numbers."""
        campaign = await find_campaign(kernel.db, campaign_id)
        return await _out(kernel, await _test_of(kernel.db, campaign.id), campaign.status)

    @delete("/", guards=[requires(WRITE)], status_code=204)
    async def remove(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Remove a test not yet started: the campaign is a plain draft again."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        test = await _test_of(kernel.db, campaign.id, lock=True)
        if test.state != READY:
            raise MarketingError(f"the test is {test.state}; only a ready one can go", 409)
        await kernel.db.delete(test)
        campaign.status = DRAFT

    @post("/start", guards=[requires(WRITE)], status_code=202)
    async def start(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AbTestOut:
        """Send the sample now; the tracked links of every variant's template are fixed now."""
        db = kernel.db
        campaign = await find_campaign(db, campaign_id, lock=True)
        test = await _test_of(db, campaign.id, lock=True)
        if campaign.status != AB_READY or test.state != READY:
            raise MarketingError(f"the test is {test.state}; start needs it ready", 409)
        urls: dict[str, None] = {}
        for variant in await variants_of(db, test):
            template = await find_template(db, variant.template_id)
            urls |= dict.fromkeys(links_of(template.html))
        for url in list(urls)[:200]:
            db.add(CampaignLink(campaign_id=campaign.id, token=new_token(), url=url[:2000]))
        now = datetime.now(UTC)
        campaign.status, campaign.started_at = AB_RUNNING, now
        test.state = TESTING
        await kernel.tasks.enqueue(AB_TASK, str(test.id))
        await kernel.audit.record(
            "marketing.campaign_started",
            target=("campaign", str(campaign.id)),
            details={"segment_id": str(campaign.segment_id), "ab_test": str(test.id)},
        )
        return await _out(kernel, test, campaign.status)

    @post("/decide", guards=[requires(WRITE)], status_code=200)
    async def decide_now(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AbTestOut:
        """End the wait now: pick the winner by the metric so far and send it to the rest."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        test = await _test_of(kernel.db, campaign.id, lock=True)
        if test.state != WAITING:
            raise MarketingError(f"the test is {test.state}; decide needs it waiting", 409)
        await decide(kernel, test)
        return await _out(kernel, test, campaign.status)

    @post("/cancel", guards=[requires(WRITE)], status_code=200)
    async def cancel(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> AbTestOut:
        """Stop the test and its campaign for good (messages already queued go out)."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        test = await _test_of(kernel.db, campaign.id, lock=True)
        if test.state in (CANCELLED, "finished"):
            raise MarketingError(f"the test is {test.state}", 409)
        test.state, test.due_at = CANCELLED, None
        campaign.status, campaign.finished_at = campaign_models.CANCELLED, datetime.now(UTC)
        await kernel.audit.record(
            "marketing.campaign_cancelled", target=("campaign", str(campaign.id))
        )
        return await _out(kernel, test, campaign.status)
