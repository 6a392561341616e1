"""``/api/marketing/campaigns``: a template sent to a segment, now or at a time; paused,
resumed or cancelled; its statistics (recipients by state, unique opens and clicks, clicks per
link, unsubscribes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import func, select

from backplane import Kernel, requires
from backplane_marketing.campaigns.models import (
    CANCELLED,
    DRAFT,
    PAUSED,
    SCHEDULED,
    SENDING,
    Campaign,
    CampaignLink,
    LinkClick,
    Recipient,
)
from backplane_marketing.campaigns.routes_templates import find_template
from backplane_marketing.campaigns.send import SEND_TASK, TICK_TASK, start_links
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.plugin import READ, WRITE
from backplane_marketing.segment_store import find_segment
from backplane_marketing.wakeups import wake_at


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    template_id: uuid.UUID
    segment_id: uuid.UUID


class SendIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    at: datetime | None = None
    """When to start (timezone-aware); now when absent or past."""


class CampaignOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    template_id: uuid.UUID
    segment_id: uuid.UUID
    status: str
    scheduled_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class LinkStats(msgspec.Struct, kw_only=True):
    url: str
    clicks: int
    """Recipients who clicked it (each once; scanners not counted)."""


class CampaignStats(msgspec.Struct, kw_only=True):
    recipients: int
    states: dict[str, int]
    opened: int
    clicked: int
    unsubscribed: int
    links: list[LinkStats]


def campaign_out(row: Campaign) -> CampaignOut:
    return CampaignOut(
        id=row.id,
        name=row.name,
        template_id=row.template_id,
        segment_id=row.segment_id,
        status=row.status,
        scheduled_at=row.scheduled_at,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def find_campaign(db: object, campaign_id: uuid.UUID, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    row = await db.scalar(query.with_for_update() if lock else query)  # type: ignore[attr-defined]
    if row is None:
        raise MarketingError(f"no campaign {campaign_id}", 404)
    assert isinstance(row, Campaign)
    return row


def _expect(campaign: Campaign, *states: str) -> None:
    if campaign.status not in states:
        raise MarketingError(
            f"the campaign is {campaign.status}; this needs it {' or '.join(states)}", 409
        )


class CampaignsController(Controller):
    path = "/campaigns"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(WRITE)])
    async def create_campaign(
        self, data: JSONBody[CampaignIn], kernel: NamedDependency[Kernel]
    ) -> CampaignOut:
        """A draft campaign of a template to a segment (both the tenant's)."""
        await find_template(kernel.db, data.template_id)
        await find_segment(kernel.db, data.segment_id)
        row = Campaign(
            name=data.name, template_id=data.template_id, segment_id=data.segment_id, status=DRAFT
        )
        kernel.db.add(row)
        await kernel.db.flush()
        return campaign_out(row)

    @get("/", guards=[requires(READ)])
    async def list_campaigns(self, kernel: NamedDependency[Kernel]) -> list[CampaignOut]:
        rows = await kernel.db.scalars(select(Campaign).order_by(Campaign.created_at.desc()))
        return [campaign_out(row) for row in rows]

    @get("/{campaign_id:uuid}", guards=[requires(READ)])
    async def get_campaign(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CampaignOut:
        return campaign_out(await find_campaign(kernel.db, campaign_id))

    @post("/{campaign_id:uuid}/send", guards=[requires(WRITE)], status_code=202)
    async def send(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[SendIn],
        kernel: NamedDependency[Kernel],
    ) -> CampaignOut:
        """Send a draft now, or schedule it (``at``); the tracked links are fixed now."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        _expect(campaign, DRAFT)
        template = await find_template(kernel.db, campaign.template_id)
        await start_links(kernel.db, campaign, template.html)
        now = datetime.now(UTC)
        if data.at is not None and data.at.tzinfo is None:
            raise MarketingError("at needs a timezone (2026-12-24T09:00:00Z)", 422)
        if data.at is not None and data.at > now:
            campaign.status, campaign.scheduled_at = SCHEDULED, data.at
            await wake_at(kernel, TICK_TASK, data.at)
        else:
            campaign.status, campaign.started_at = SENDING, now
            await kernel.tasks.enqueue(SEND_TASK, str(campaign.id))
        await kernel.audit.record(
            "marketing.campaign_started",
            target=("campaign", str(campaign.id)),
            details={"segment_id": str(campaign.segment_id), "status": campaign.status},
        )
        return campaign_out(campaign)

    @post("/{campaign_id:uuid}/pause", guards=[requires(WRITE)], status_code=200)
    async def pause(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CampaignOut:
        """Stop queueing messages (those already queued go out); resume goes on from there."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        _expect(campaign, SENDING, SCHEDULED)
        campaign.status = PAUSED
        return campaign_out(campaign)

    @post("/{campaign_id:uuid}/resume", guards=[requires(WRITE)], status_code=200)
    async def resume(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CampaignOut:
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        _expect(campaign, PAUSED)
        campaign.status, campaign.next_run_at = SENDING, None
        campaign.started_at = campaign.started_at or datetime.now(UTC)
        await kernel.tasks.enqueue(SEND_TASK, str(campaign.id))
        return campaign_out(campaign)

    @post("/{campaign_id:uuid}/cancel", guards=[requires(WRITE)], status_code=200)
    async def cancel(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CampaignOut:
        """Stop for good: recipients not yet sent to stay ``pending``, never sent."""
        campaign = await find_campaign(kernel.db, campaign_id, lock=True)
        _expect(campaign, DRAFT, SCHEDULED, SENDING, PAUSED)
        campaign.status, campaign.finished_at = CANCELLED, datetime.now(UTC)
        await kernel.audit.record(
            "marketing.campaign_cancelled", target=("campaign", str(campaign.id))
        )
        return campaign_out(campaign)

    @get("/{campaign_id:uuid}/stats", guards=[requires(READ)])
    async def stats(
        self, campaign_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> CampaignStats:
        db = kernel.db
        campaign = await find_campaign(db, campaign_id)
        mine = Recipient.campaign_id == campaign.id
        by_state = select(Recipient.state, func.count()).where(mine).group_by(Recipient.state)
        states: dict[str, int] = {
            str(state): int(n) for state, n in (await db.execute(by_state)).all()
        }

        async def count(column: Any) -> int:
            query = select(func.count()).select_from(Recipient).where(mine, column.is_not(None))
            return int(await db.scalar(query) or 0)

        clicks = (
            select(CampaignLink.url, func.count(LinkClick.recipient_id))
            .outerjoin(LinkClick, LinkClick.link_id == CampaignLink.id)
            .where(CampaignLink.campaign_id == campaign.id)
            .group_by(CampaignLink.id, CampaignLink.url)
            .order_by(CampaignLink.url)
        )
        return CampaignStats(
            recipients=sum(states.values()),
            states=states,
            opened=await count(Recipient.opened_at),
            clicked=await count(Recipient.clicked_at),
            unsubscribed=await count(Recipient.unsubscribed_at),
            links=[LinkStats(url=u, clicks=int(n)) for u, n in (await db.execute(clicks)).all()],
        )
