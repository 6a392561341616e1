"""Automation tables (migration ``marketing_0005_automations``): the sequences, one durable
row per contact's pass through a sequence (its current step and when it runs next), the log
of the steps each pass went through, and the messages the sequence queued (one per pass and
step: the unique key that makes the mail hand-over idempotent). Every table is
``TenantScoped`` with RLS."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
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

DRAFT, ACTIVE, PAUSED, ARCHIVED = "draft", "active", "paused", "archived"
"""Automation states: editable; enrolling and advancing; neither (runs keep their place);
finished for good (its open runs are ``exited``)."""
RUNNING, FINISHED, FAILED, EXITED = "active", "finished", "failed", "exited"
"""Run states: on its way (``next_run_at`` says when its current step runs); past the last
step; stopped by a step that could not be done (``error``); stopped by an archive."""


def _tenant_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE")


def _fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint([column], [f"{table}.id"], ondelete="CASCADE")


class Automation(TenantScoped, Base):
    """A sequence: its trigger (``trigger_type`` and ``trigger_key``, copied out of the
    definition so that enrolment is one indexed query) and its definition, immutable once
    activated."""

    __tablename__ = "marketing_automations"
    __table_args__ = (
        _tenant_fk(),
        Index("ix_marketing_automations_trigger", "tenant_id", "status", "trigger_type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    trigger_type: Mapped[str] = mapped_column(String(32))
    trigger_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    allow_reentry: Mapped[bool] = mapped_column(default=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AutomationRun(TenantScoped, Base):
    """One contact's pass through an automation (``entry`` counts passes: unique per contact
    and automation, so a contact enters at most once unless re-entry is allowed)."""

    __tablename__ = "marketing_automation_runs"
    __table_args__ = (
        _tenant_fk(),
        _fk("automation_id", "marketing_automations"),
        _fk("contact_id", "marketing_contacts"),
        UniqueConstraint(
            "automation_id", "contact_id", "entry", name="uq_marketing_automation_runs_entry"
        ),
        Index("ix_marketing_automation_runs_due", "tenant_id", "status", "next_run_at"),
        Index("ix_marketing_automation_runs_contact", "contact_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    automation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    entry: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    step: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The step that runs next (None once finished)."""
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AutomationStepLog(TenantScoped, Base):
    """A step a run went through, with what it did (``outcome``), in the transaction that
    did it."""

    __tablename__ = "marketing_automation_steps"
    __table_args__ = (
        _tenant_fk(),
        _fk("run_id", "marketing_automation_runs"),
        Index("ix_marketing_automation_steps_run", "run_id", "at", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    automation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    step: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    """The step's index in the definition: jumps only go forward, so a run's steps are in
    the order of their positions (several steps of one advance share ``at``)."""
    kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AutomationMessage(TenantScoped, Base):
    """A message a run's ``send_email`` step queued with the kernel's mail service (unique per
    run and step: a step is never handed over twice) and its one-click unsubscribe token."""

    __tablename__ = "marketing_automation_messages"
    __table_args__ = (
        _tenant_fk(),
        _fk("run_id", "marketing_automation_runs"),
        _fk("contact_id", "marketing_contacts"),
        UniqueConstraint("run_id", "step", name="uq_marketing_automation_messages_step"),
        UniqueConstraint("token", name="uq_marketing_automation_messages_token"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    automation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    step: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(64))
    mail_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


AUTOMATION_TABLES: tuple[type[Base], ...] = (
    Automation,
    AutomationRun,
    AutomationStepLog,
    AutomationMessage,
)
"""Parents first."""
