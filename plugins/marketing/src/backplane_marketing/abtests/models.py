"""A/B test tables: a campaign's test (metric, sample, wait, state, winner), its variants
(a subject and/or a template each) and which variant each recipient got. ``TenantScoped``
with RLS; recipients stay the campaign's own rows (``marketing_recipients``), so tracking and
suppression work as for any campaign and nobody gets two messages of one campaign."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped
from backplane_marketing.models import now

READY, TESTING, WAITING, SENDING_REST, FINISHED, CANCELLED = (
    "ready",
    "testing",
    "waiting",
    "sending_rest",
    "finished",
    "cancelled",
)
"""Test states: configured (the campaign waits for ``start``); the sample is being sent;
waiting for the metric; the winner goes to the rest of the segment; done; stopped."""
SAMPLE, REST = "sample", "rest"
"""Which phase a recipient was sent in."""


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def _fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint([column], [f"{table}.id"], ondelete="CASCADE")


class AbTest(TenantScoped, Base):
    """The test of one campaign (unique): ``sample_percent`` of the segment is split evenly
    among the variants; ``wait_seconds`` after the sample is queued the variant with the best
    ``metric`` rate (``opens`` or ``clicks``, unique per recipient) wins and goes to the rest."""

    __tablename__ = "marketing_ab_tests"
    __table_args__ = (
        _tenant_fk(),
        _fk("campaign_id", "marketing_campaigns"),
        UniqueConstraint("campaign_id", name="uq_marketing_ab_tests_campaign"),
        Index("ix_marketing_ab_tests_due", "state", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    metric: Mapped[str] = mapped_column(String(16))
    sample_percent: Mapped[float] = mapped_column(Float)
    wait_seconds: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=READY)
    sampled: Mapped[bool] = mapped_column(default=False)
    """The sample's recipient rows exist."""
    cursor: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    """The rest: the last contact id whose recipient row exists."""
    materialised: Mapped[bool] = mapped_column(default=False)
    """The rest: every recipient row exists."""
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the per-minute tick acts on the test: decides it (``waiting``), or resumes a send
    the tenant's rate stopped (``testing``, ``sending_rest``)."""
    winner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AbVariant(TenantScoped, Base):
    """A variant: a label, a subject replacing the template's (a subject test) and/or another
    template (a content test)."""

    __tablename__ = "marketing_ab_variants"
    __table_args__ = (
        _tenant_fk(),
        _fk("test_id", "marketing_ab_tests"),
        _fk("template_id", "marketing_templates"),
        UniqueConstraint("test_id", "label", name="uq_marketing_ab_variants_label"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    test_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    label: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(998), nullable=True)
    template_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class AbAssignment(TenantScoped, Base):
    """Which variant a recipient got, and in which phase (``sample`` or ``rest``)."""

    __tablename__ = "marketing_ab_assignments"
    __table_args__ = (
        _tenant_fk(),
        _fk("recipient_id", "marketing_recipients"),
        _fk("variant_id", "marketing_ab_variants"),
        Index("ix_marketing_ab_assignments_variant", "variant_id"),
    )

    recipient_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    variant_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    phase: Mapped[str] = mapped_column(String(8))


AB_TABLES: tuple[Any, ...] = (AbTest, AbVariant, AbAssignment)
"""Parents first."""
