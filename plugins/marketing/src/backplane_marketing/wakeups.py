"""Work due at a known time runs then, not at the next periodic tick.

A scheduled campaign, a send stopped by the tenant's rate, an A/B test's wait and an
automation's wait each store when they are due. The code that stores the time also queues
the task that acts on due rows for that moment (``kernel.tasks.enqueue_at``), in the same
transaction. That task only acts on what is due when it runs, so one that runs early (a clock
behind), twice, or for a row changed since (paused, cancelled, decided by hand) does nothing
more. The per-tenant ticks stay, every ten minutes instead of every minute, for what no wake-up
was queued for (rows written by a version before this one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

SAFETY_TICK = "*/10 * * * *"
"""The ticks' schedule: a safety net, since wake-ups do the timely work."""

SLACK = timedelta(seconds=1)
"""Added to a due time, rounded up to the second: a worker whose clock runs a little behind the
relay's still finds the row due."""


async def wake_at(kernel: Any, task: str, due: datetime) -> datetime:
    """Queue ``task`` (which acts on whatever is due) for ``due``; the time it was queued for."""
    when = due.replace(microsecond=0) + SLACK + timedelta(seconds=1 if due.microsecond else 0)
    await kernel.tasks.enqueue_at(when, task)
    return when


async def rate_frees_at(db: Any, now: datetime) -> datetime:
    """When the tenant's per-minute send rate has room again: a minute after the oldest
    message of the last minute (the rate counts recipients ``sent`` in the last 60 s)."""
    from backplane_marketing.campaigns.models import Recipient

    since = now - timedelta(seconds=60)
    oldest: datetime | None = await db.scalar(
        select(func.min(Recipient.sent_at)).where(Recipient.sent_at > since)
    )
    if oldest is None:
        return now + SLACK
    if oldest.tzinfo is None:  # SQLite gives the stored UTC wall time back without its zone
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(oldest + timedelta(seconds=60), now + SLACK)
