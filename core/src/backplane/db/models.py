"""The kernel's own tables (identity, tenancy and billing tables arrive with their issues)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from backplane.db.base import Base


class KernelState(Base):
    """Key/value facts about this installation, such as when demo data was seeded."""

    __tablename__ = "backplane_kernel_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
