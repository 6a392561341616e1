"""Outbox and schedule tables (kernel-internal: never exposed to plugins through the ORM)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base

PENDING, SENT, DONE, FAILED = "pending", "sent", "done", "failed"
DELAYED = "delayed"
"""Enqueued for later (``not_before``): the relay hands it over once that time has come."""


class OutboxMessage(Base):
    """One task: written with the business data, handed to the broker after commit.

    ``context_tenant_id`` is the tenant the actor runs for (a context, not row ownership: the
    relay reads across tenants, so the table carries no ``tenant_id`` and no row-level security).
    It references the tenant with ``ON DELETE CASCADE`` all the same, as every tenant table does:
    a task enqueued by a transaction still in flight when its tenant is deleted is either
    waited for and deleted with the tenant, or refused (the tenant is gone), never left behind.
    """

    __tablename__ = "backplane_task_outbox"
    __table_args__ = (Index("ix_backplane_task_outbox_due", "status", "not_before"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    actor: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    context_tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("backplane_tenants.id", ondelete="CASCADE"), index=True
    )
    trace_context: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True, default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A delayed task's (``kernel.tasks.enqueue_at``) earliest start; None: at once."""


class ScheduleRun(Base):
    """One period of one periodic job; the primary key makes each period run exactly once."""

    __tablename__ = "backplane_task_schedule_runs"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outbox_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The period's task; a per-tenant job's first one (the nil UUID when no tenant had it)."""
