"""A contact's activity as the database aggregates it: events counted per contact, kind and
day (one ``GROUP BY``; a day's events are as old as its latest one, so ages are exact for the
newest event and right to within a day for the others), optionally only those before the
contact's first conversion, which is what a model may learn from (activity after a conversion
would leak the answer)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.dialect import dialect_name
from backplane_marketing.models import ContactEvent

CONVERSION = "converted"
"""The event kind that records a conversion (``POST /api/marketing/events``)."""

Buckets = dict[uuid.UUID, dict[str, list[tuple[float, int]]]]
"""contact -> event kind -> [(age in days, count)]."""


def _day(db: AsyncSession) -> Any:
    if dialect_name(db) == "postgresql":
        return func.date_trunc("day", ContactEvent.occurred_at)
    return func.date(ContactEvent.occurred_at)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's aggregates answer text
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


async def conversions(db: AsyncSession) -> dict[uuid.UUID, datetime]:
    """Each converted contact's first conversion time."""
    rows = await db.execute(
        select(ContactEvent.contact_id, func.min(ContactEvent.occurred_at))
        .where(ContactEvent.type == CONVERSION)
        .group_by(ContactEvent.contact_id)
    )
    return {contact: _as_datetime(at) for contact, at in rows}


async def activity(
    db: AsyncSession,
    contact_ids: list[uuid.UUID] | None,
    *,
    now: datetime,
    before_conversion: bool = False,
) -> Buckets:
    """Events (conversions excluded) per contact, kind and day, with their age in days at
    ``now`` (or, with ``before_conversion``, at the contact's first conversion, counting only
    earlier events)."""
    day = _day(db)
    latest = func.max(ContactEvent.occurred_at)
    query = select(
        ContactEvent.contact_id, ContactEvent.type, latest, func.count(ContactEvent.id)
    ).where(ContactEvent.type != CONVERSION)
    converted = None
    if before_conversion:
        converted = (
            select(
                ContactEvent.contact_id.label("contact_id"),
                func.min(ContactEvent.occurred_at).label("at"),
            )
            .where(ContactEvent.type == CONVERSION)
            .group_by(ContactEvent.contact_id)
            .subquery()
        )
        query = query.outerjoin(converted, converted.c.contact_id == ContactEvent.contact_id)
        query = query.where(
            or_(converted.c.at.is_(None), ContactEvent.occurred_at < converted.c.at)
        )
    if contact_ids is not None:
        query = query.where(ContactEvent.contact_id.in_(contact_ids))
    query = query.group_by(ContactEvent.contact_id, ContactEvent.type, day)
    firsts = await conversions(db) if before_conversion else {}
    buckets: Buckets = defaultdict(lambda: defaultdict(list))
    for contact, kind, when, count in await db.execute(query):
        reference = firsts.get(contact, now)
        age = max((reference - _as_datetime(when)).total_seconds() / 86400, 0.0)
        buckets[contact][kind].append((age, int(count)))
    return buckets
