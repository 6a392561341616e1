"""Campaign tables (migration ``marketing_0002``): templates, campaigns, one durable recipient
row per contact and campaign (its state is what makes sending exactly-once), the campaign's
tracked links, first clicks per recipient and link, suppressed contacts and the tenant's
bounce-webhook secret. Every table is ``TenantScoped`` with RLS."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped
from backplane_marketing.models import now

PENDING, SENT, SUPPRESSED = "pending", "sent", "suppressed"
"""Recipient states: waiting; its message is queued with the kernel's mail service (in the
same transaction as this state); left out because the contact is suppressed."""
DRAFT, SCHEDULED, SENDING, PAUSED, CANCELLED, FINISHED = (
    "draft",
    "scheduled",
    "sending",
    "paused",
    "cancelled",
    "finished",
)


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def _fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint([column], [f"{table}.id"], ondelete="CASCADE")


class CampaignTemplate(TenantScoped, Base):
    """A tenant's message template: subject, HTML and text parts (Jinja2, sandboxed)."""

    __tablename__ = "marketing_templates"
    __table_args__ = (
        _tenant_fk(),
        UniqueConstraint("tenant_id", "name", name="uq_marketing_templates_tenant_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(998))
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Campaign(TenantScoped, Base):
    """A send of a template to a segment. ``cursor`` is the last contact id whose recipient
    row exists (rows are made chunk by chunk, ``materialised`` when done); ``next_run_at`` is
    set when the tenant's rate stopped the chain of send tasks (the per-minute tick resumes)."""

    __tablename__ = "marketing_campaigns"
    __table_args__ = (
        _tenant_fk(),
        _fk("template_id", "marketing_templates"),
        _fk("segment_id", "marketing_segments"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    template_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    segment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cursor: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    materialised: Mapped[bool] = mapped_column(default=False)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Recipient(TenantScoped, Base):
    """One contact of one campaign (unique): its state, its message and its opaque token (the
    open pixel's and the unsubscribe link's; clicks add the link's token)."""

    __tablename__ = "marketing_recipients"
    __table_args__ = (
        _tenant_fk(),
        _fk("campaign_id", "marketing_campaigns"),
        _fk("contact_id", "marketing_contacts"),
        UniqueConstraint("campaign_id", "contact_id", name="uq_marketing_recipients_contact"),
        UniqueConstraint("token", name="uq_marketing_recipients_token"),
        Index("ix_marketing_recipients_state", "campaign_id", "state", "id"),
        Index("ix_marketing_recipients_sent_at", "tenant_id", "sent_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    token: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    mail_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The kernel's mail message (``GET /api/mail/messages/{id}``)."""
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CampaignLink(TenantScoped, Base):
    """A link of the campaign's HTML, tracked: a click carries ``token``; the redirect goes to
    ``url`` as stored here, never to anything taken from the request."""

    __tablename__ = "marketing_links"
    __table_args__ = (
        _tenant_fk(),
        _fk("campaign_id", "marketing_campaigns"),
        UniqueConstraint("campaign_id", "token", name="uq_marketing_links_token"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    token: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))


class LinkClick(TenantScoped, Base):
    """A recipient's first counted click on a link (later clicks are not counted again)."""

    __tablename__ = "marketing_link_clicks"
    __table_args__ = (
        _tenant_fk(),
        _fk("recipient_id", "marketing_recipients"),
        _fk("link_id", "marketing_links"),
    )

    recipient_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    link_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    clicked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Suppression(TenantScoped, Base):
    """A contact no campaign writes to again: ``unsubscribed``, ``bounced`` or ``complained``."""

    __tablename__ = "marketing_suppressions"
    __table_args__ = (_tenant_fk(), _fk("contact_id", "marketing_contacts"))

    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class WebhookSecret(TenantScoped, Base):
    """The SHA-256 of the tenant's bounce-webhook secret (the secret is shown once)."""

    __tablename__ = "marketing_webhook_secrets"
    __table_args__ = (_tenant_fk(),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


CAMPAIGN_TABLES: tuple[type[Base], ...] = (
    CampaignTemplate,
    Campaign,
    Recipient,
    CampaignLink,
    LinkClick,
    Suppression,
    WebhookSecret,
)
"""Parents first."""
