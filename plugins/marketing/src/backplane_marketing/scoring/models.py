"""The scoring tables: a tenant's rules and each contact's current score with its reasons."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKeyConstraint, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped
from backplane_marketing.models import now


class ScoreRule(TenantScoped, Base):
    """``points`` for each event ``key`` (decaying: worth half after ``half_life_days``; none
    means no decay), or for a contact whose attribute ``key`` equals ``value``."""

    __tablename__ = "marketing_score_rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    """``event`` or ``attribute``."""
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(String(200), nullable=True)
    points: Mapped[float] = mapped_column(Float)
    half_life_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ContactScore(TenantScoped, Base):
    """A contact's score (0-100: the production model's conversion probability x 100 when
    the tenant has one, else the rules' points capped to 0-100), the rules' points, and why."""

    __tablename__ = "marketing_scores"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["contact_id"], ["marketing_contacts.id"], ondelete="CASCADE"),
        Index("ix_marketing_scores_tenant_score", "tenant_id", "score"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    rules_points: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    """``model`` or ``rules``: what ``score`` comes from."""
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ScoringSpec(TenantScoped, Base):
    """The feature layout of the tenant's last training (event kinds and attributes, in
    column order), so that serving feeds the model the columns it learnt from."""

    __tablename__ = "marketing_scoring_specs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
