"""Contacts: create (deduplicated on the normalised email, race-safe), read, change, delete,
their tags, consent, list subscriptions and timeline."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.attributes import AttributeValueError, check_values, definitions_of
from backplane_marketing.dialect import insert_for
from backplane_marketing.emails import InvalidEmailError, normalise_email
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import (
    AttributeDefinition,
    Contact,
    ContactEvent,
    ContactTag,
    MailingList,
    Subscription,
)
from backplane_marketing.schemas import (
    ConsentIn,
    ConsentOut,
    ContactIn,
    ContactOut,
    ContactPatch,
    SubscriptionIn,
    SubscriptionOut,
)
from backplane_marketing.settings import MarketingSettings


def email_or_400(raw: str) -> str:
    try:
        return normalise_email(raw)
    except InvalidEmailError as error:
        raise MarketingError(str(error)) from None


async def checked_attributes(
    db: AsyncSession, values: dict[str, Any], settings: MarketingSettings
) -> dict[str, Any]:
    definitions = definitions_of(await db.scalars(select(AttributeDefinition)))
    try:
        return check_values(definitions, values, settings.max_attribute_chars)
    except AttributeValueError as error:
        raise MarketingError(str(error), 422) from None


async def find_contact(db: AsyncSession, contact_id: uuid.UUID, *, lock: bool = False) -> Contact:
    query = select(Contact).where(Contact.id == contact_id)
    contact = await db.scalar(query.with_for_update() if lock else query)
    if contact is None:
        raise MarketingError(f"no contact {contact_id}", 404)
    return contact


async def create_contact(
    db: AsyncSession, tenant_id: uuid.UUID, data: ContactIn, settings: MarketingSettings
) -> Contact:
    """A new contact; 409 when the tenant already has one with this normalised email (also
    when another request creates it at the same moment: the unique constraint decides)."""
    email = email_or_400(data.email)
    attributes = {
        k: v
        for k, v in (await checked_attributes(db, data.attributes, settings)).items()
        if v is not None
    }
    _check_tag_count(data.tags, settings)
    now = datetime.now(UTC)
    consent = data.consent
    values = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "email": email,
        "name": data.name,
        "attributes": attributes,
        "consent": consent.status if consent else "unknown",
        "consent_source": consent.source if consent else "",
        "consent_at": now if consent else None,
        "created_at": now,
        "updated_at": now,
    }
    statement = (
        insert_for(db, Contact)
        .values(values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "email"])
    )
    created = await db.scalar(statement.returning(Contact.id))
    if created is None:
        raise MarketingError(f"a contact with email {email!r} exists", 409)
    contact = await find_contact(db, created)
    await set_tags(db, contact.id, data.tags)
    await set_subscriptions(db, contact.id, data.lists)
    if consent is not None:
        add_event(
            db, contact.id, "consent_changed", {"status": consent.status, "source": consent.source}
        )
    return contact


def _check_tag_count(tags: list[str], settings: MarketingSettings) -> None:
    if len(set(tags)) > settings.max_tags_per_contact:
        raise MarketingError(
            f"more than {settings.max_tags_per_contact} tags (setting max_tags_per_contact)"
        )


async def set_tags(db: AsyncSession, contact_id: uuid.UUID, tags: list[str]) -> None:
    """Replace the contact's tags; each new one fires the automations' ``tag_added``."""
    from backplane_marketing.automations.engine import enrol

    before = set(
        await db.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact_id))
    )
    await db.execute(delete(ContactTag).where(ContactTag.contact_id == contact_id))
    for tag in sorted(set(tags)):
        db.add(ContactTag(contact_id=contact_id, tag=tag))
    await db.flush()
    for tag in sorted(set(tags) - before):
        await enrol(db, contact_id, "tag_added", tag)


async def set_subscriptions(
    db: AsyncSession, contact_id: uuid.UUID, wanted: list[SubscriptionIn]
) -> None:
    """Set the status on each list named (404 for a list the tenant does not have); joining
    one (``subscribed``) fires the automations' ``list_joined``."""
    from backplane_marketing.automations.engine import enrol

    if not wanted:
        return
    joined: list[uuid.UUID] = []
    ids = {w.list_id for w in wanted}
    found = set(await db.scalars(select(MailingList.id).where(MailingList.id.in_(ids))))
    if missing := ids - found:
        raise MarketingError(f"no list {sorted(map(str, missing))[0]}", 404)
    now = datetime.now(UTC)
    for item in wanted:
        row = await db.get(Subscription, (contact_id, item.list_id))
        if row is None:
            db.add(Subscription(contact_id=contact_id, list_id=item.list_id, status=item.status))
        elif row.status != item.status:
            row.status, row.updated_at = item.status, now
        else:
            continue
        add_event(db, contact_id, item.status, {"list_id": str(item.list_id)})
        if item.status == "subscribed":
            joined.append(item.list_id)
    await db.flush()
    for list_id in joined:
        await enrol(db, contact_id, "list_joined", str(list_id))


def add_event(
    db: AsyncSession,
    contact_id: uuid.UUID,
    kind: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> ContactEvent:
    event = ContactEvent(
        contact_id=contact_id, type=kind, data=data, occurred_at=occurred_at or datetime.now(UTC)
    )
    db.add(event)
    return event


def _set_consent(db: AsyncSession, contact: Contact, consent: ConsentIn) -> None:
    contact.consent, contact.consent_source = consent.status, consent.source
    contact.consent_at = datetime.now(UTC)
    add_event(
        db, contact.id, "consent_changed", {"status": consent.status, "source": consent.source}
    )


async def update_contact(
    db: AsyncSession, contact_id: uuid.UUID, patch: ContactPatch, settings: MarketingSettings
) -> Contact:
    contact = await find_contact(db, contact_id, lock=True)
    if patch.email is not None:
        contact.email = email_or_400(patch.email)
    if patch.name is not None:
        contact.name = patch.name
    if patch.attributes is not None:
        checked = await checked_attributes(db, patch.attributes, settings)
        merged = {**contact.attributes, **checked}
        contact.attributes = {k: v for k, v in merged.items() if v is not None}
    if patch.consent is not None:
        _set_consent(db, contact, patch.consent)
    contact.updated_at = datetime.now(UTC)
    try:
        await db.flush()
    except IntegrityError:
        raise MarketingError(f"a contact with email {contact.email!r} exists", 409) from None
    if patch.tags is not None:
        _check_tag_count(patch.tags, settings)
        await set_tags(db, contact.id, patch.tags)
    if patch.lists is not None:
        await set_subscriptions(db, contact.id, patch.lists)
    return contact


async def contacts_out(db: AsyncSession, contacts: list[Contact]) -> list[ContactOut]:
    """The contacts with their tags and subscriptions (two queries for the whole page)."""
    ids = [c.id for c in contacts]
    tags: dict[uuid.UUID, list[str]] = defaultdict(list)
    lists: dict[uuid.UUID, list[SubscriptionOut]] = defaultdict(list)
    if ids:
        for contact_id, tag in await db.execute(
            select(ContactTag.contact_id, ContactTag.tag)
            .where(ContactTag.contact_id.in_(ids))
            .order_by(ContactTag.tag)
        ):
            tags[contact_id].append(tag)
        for sub in await db.scalars(
            select(Subscription)
            .where(Subscription.contact_id.in_(ids))
            .order_by(Subscription.list_id)
        ):
            lists[sub.contact_id].append(
                SubscriptionOut(list_id=sub.list_id, status=sub.status, updated_at=sub.updated_at)
            )
    return [
        ContactOut(
            id=c.id,
            email=c.email,
            name=c.name,
            attributes=c.attributes,
            tags=tags[c.id],
            consent=ConsentOut(status=c.consent, source=c.consent_source, at=c.consent_at),
            lists=lists[c.id],
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
        for c in contacts
    ]


async def page_of_contacts(
    db: AsyncSession, limit: int, after: uuid.UUID | None, where: Any = None
) -> tuple[list[Contact], uuid.UUID | None]:
    """Oldest first, keyset-paged on ``(created_at, id)`` (stable under concurrent inserts)."""
    query = select(Contact)
    if where is not None:
        query = query.where(where)
    if after is not None:
        anchor = await db.get(Contact, after)
        if anchor is None:
            raise MarketingError(f"after: no contact {after}", 400)
        query = query.where(
            tuple_(Contact.created_at, Contact.id)
            > tuple_(
                literal(anchor.created_at, Contact.created_at.type),
                literal(anchor.id, Contact.id.type),
            )
        )
    rows = list(await db.scalars(query.order_by(Contact.created_at, Contact.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def count_contacts(db: AsyncSession, where: Any = None) -> int:
    query = select(func.count()).select_from(Contact)
    return int(await db.scalar(query if where is None else query.where(where)) or 0)
