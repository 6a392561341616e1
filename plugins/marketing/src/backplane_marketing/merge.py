"""Merging a duplicate contact into the one kept: attributes, tags, list subscriptions, static
segment memberships and the timeline move over, the duplicate is deleted, and the merge is in
the audit trail (an irreversible change to personal data)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from backplane_marketing.contacts import add_event, find_contact
from backplane_marketing.dialect import insert_for
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import (
    Contact,
    ContactEvent,
    ContactTag,
    SegmentMember,
    Subscription,
)


async def merge_contacts(kernel: Any, keep_id: uuid.UUID, duplicate_id: uuid.UUID) -> Contact:
    """Fold ``duplicate_id`` into ``keep_id``. The kept contact's values win; what only the
    duplicate has is added; for a list where they differ, ``unsubscribed`` wins (an opt-out
    is never lost); the more recent consent decision wins."""
    if keep_id == duplicate_id:
        raise MarketingError("a contact cannot be merged into itself")
    db = kernel.db
    # Lock both rows in id order: two merges of the same pair never deadlock.
    locked = {}
    for contact_id in sorted((keep_id, duplicate_id)):
        locked[contact_id] = await find_contact(db, contact_id, lock=True)
    keep, dup = locked[keep_id], locked[duplicate_id]
    keep.attributes = {**dup.attributes, **keep.attributes}
    keep.name = keep.name or dup.name
    if dup.consent_at is not None and (keep.consent_at is None or dup.consent_at > keep.consent_at):
        keep.consent, keep.consent_source, keep.consent_at = (
            dup.consent,
            dup.consent_source,
            dup.consent_at,
        )
    keep.updated_at = datetime.now(UTC)
    tenant_id = kernel.tenant_id
    tags = list(await db.scalars(select(ContactTag.tag).where(ContactTag.contact_id == dup.id)))
    if tags:
        await db.execute(
            insert_for(db, ContactTag)
            .values([{"tenant_id": tenant_id, "contact_id": keep.id, "tag": t} for t in tags])
            .on_conflict_do_nothing()
        )
    await _merge_subscriptions(db, keep.id, dup.id)
    members = list(
        await db.scalars(select(SegmentMember.segment_id).where(SegmentMember.contact_id == dup.id))
    )
    if members:
        await db.execute(
            insert_for(db, SegmentMember)
            .values(
                [{"tenant_id": tenant_id, "segment_id": s, "contact_id": keep.id} for s in members]
            )
            .on_conflict_do_nothing()
        )
    moved = await db.execute(
        update(ContactEvent)
        .where(ContactEvent.contact_id == dup.id)
        .values(contact_id=keep.id)
        .execution_options(synchronize_session=False)
    )
    details = {"kept": str(keep.id), "merged": str(dup.id), "merged_email": dup.email}
    await db.delete(dup)
    add_event(db, keep.id, "merged", details)
    await db.flush()
    await kernel.audit.record(
        "marketing.contacts_merged",
        target=("contact", keep.id),
        details={**details, "events_moved": int(moved.rowcount or 0), "tags": len(tags)},
    )
    return keep


async def _merge_subscriptions(db: Any, keep_id: uuid.UUID, dup_id: uuid.UUID) -> None:
    kept = {
        s.list_id: s
        for s in await db.scalars(select(Subscription).where(Subscription.contact_id == keep_id))
    }
    for sub in list(
        await db.scalars(select(Subscription).where(Subscription.contact_id == dup_id))
    ):
        mine = kept.get(sub.list_id)
        if mine is None:
            db.add(
                Subscription(
                    contact_id=keep_id,
                    list_id=sub.list_id,
                    status=sub.status,
                    updated_at=sub.updated_at,
                )
            )
        elif sub.status == "unsubscribed" and mine.status != "unsubscribed":
            mine.status, mine.updated_at = "unsubscribed", datetime.now(UTC)
    await db.flush()
