"""The retraining schedule table: at most one cron schedule per tenant model."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKeyConstraint, String, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base
from backplane.db.tenancy import TenantScoped


class TrainingSchedule(TenantScoped, Base):
    """Retrain the tenant's ``model`` with ``trainer`` at each time ``cron`` names (UTC)."""

    __tablename__ = "backplane_training_schedules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "model"),
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model: Mapped[str] = mapped_column(String(100))
    trainer: Mapped[str] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(100))
    last_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """The latest time of the schedule taken (by one process only): its run was started, or
    refused with ``last_error``. Set to the latest past time when the schedule is set, so
    setting one never trains at once."""
    last_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
