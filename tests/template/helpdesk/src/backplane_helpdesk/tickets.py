"""Tickets, and the job that closes the ones left open too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backplane import Base, Kernel, TenantScoped
from sqlalchemy import DateTime, Integer, String, update
from sqlalchemy.orm import Mapped, mapped_column


class Ticket(TenantScoped, Base):
    __tablename__ = "helpdesk_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


async def close_stale_tickets(kernel: Kernel) -> int:
    """The nightly per-tenant job: close the tenant's open tickets older than
    ``auto_close_days``. ``kernel.db`` sees only the tenant the kernel runs it for, so the
    update needs no tenant filter of its own (and on PostgreSQL, row-level security agrees)."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=kernel.plugin_settings.auto_close_days)
    result = await kernel.db.execute(
        update(Ticket)
        .where(Ticket.closed_at.is_(None), Ticket.created_at < cutoff)
        .values(closed_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
