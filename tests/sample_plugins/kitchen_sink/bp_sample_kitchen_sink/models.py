"""The plugin's tables; their rows reference their tenant, and go when it is deleted."""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


class Note(TenantScoped, Base):
    """A tenant's note."""

    __tablename__ = "kitchen_sink_notes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(500))


class TaskLog(TenantScoped, Base):
    """Rows written by the sample actors, one per successful run."""

    __tablename__ = "kitchen_sink_task_log"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(64))
