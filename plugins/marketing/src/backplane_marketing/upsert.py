"""Contacts upserted in batches by normalised email: one ``INSERT ... ON CONFLICT DO UPDATE``
per batch (on PostgreSQL fed by ``COPY`` into a staging table, :mod:`.upsert_copy`; on SQLite a
multi-row ``VALUES``), then their tags and list subscriptions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.dialect import dialect_name, insert_for
from backplane_marketing.models import Contact, ContactTag, Subscription
from backplane_marketing.rows import ContactRow
from backplane_marketing.upsert_copy import copy_upsert_contacts

CONTACTS = Contact.__table__
TAGS = ContactTag.__table__
SUBSCRIPTIONS = Subscription.__table__


def _merged_attributes(db: AsyncSession, excluded: Any) -> Any:
    """Existing attributes with the row's on top (JSONB ``||``; SQLite's ``json_patch``)."""
    if dialect_name(db) == "postgresql":
        return CONTACTS.c.attributes.op("||")(excluded.attributes)
    return func.json_patch(CONTACTS.c.attributes, excluded.attributes)


async def upsert_rows(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    rows: list[ContactRow],
    *,
    list_id: uuid.UUID | None = None,
    extra_tags: list[str] | None = None,
) -> tuple[int, list[tuple[int, str]]]:
    """Upsert ``rows``; the number written and the ``(line, reason)`` of duplicates: a second
    row of the same import with an address already written by it (in this batch, or an earlier
    one: the contact's ``import_id`` says so) is reported, never applied over the first."""
    errors: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    unique: list[ContactRow] = []
    for row in rows:
        if row.email in first_line:
            errors.append((row.line, f"duplicate email {row.email} (line {first_line[row.email]})"))
            continue
        first_line[row.email] = row.line
        unique.append(row)
    if not unique:
        return 0, errors
    now = datetime.now(UTC)
    if dialect_name(db) == "postgresql":
        ids = list_id is not None or bool(extra_tags) or any(row.tags for row in unique)
        written, skipped = await copy_upsert_contacts(
            db, tenant_id, import_id, unique, now, ids=ids
        )
    else:
        written = await _values_upsert_contacts(db, tenant_id, import_id, unique, now)
        skipped = {row.email for row in unique if row.email not in written}
    if skipped:
        errors.extend(
            (row.line, f"duplicate email {row.email} (an earlier line of this file)")
            for row in unique
            if row.email in skipped
        )
    tags = [
        {"tenant_id": tenant_id, "contact_id": written[row.email], "tag": tag}
        for row in unique
        if row.email in written
        for tag in sorted({*row.tags, *(extra_tags or ())})
    ]
    from backplane_marketing.automations.engine import active_trigger_types, enrol_many

    watched = await active_trigger_types(db) if tags or list_id is not None else set()
    if tags and "tag_added" in watched:
        # Automations listen: the tags this import added (RETURNING gives the inserted rows
        # only) start them.
        added = await db.execute(
            insert_for(db, TAGS).on_conflict_do_nothing().returning(TAGS.c.contact_id, TAGS.c.tag),
            tags,
        )
        await enrol_many(db, "tag_added", [(c, t) for c, t in added.tuples().all()])
    elif tags:
        await db.execute(insert_for(db, TAGS).on_conflict_do_nothing(), tags)
    if list_id is not None and written:
        subscriptions = [
            {
                "tenant_id": tenant_id,
                "contact_id": contact_id,
                "list_id": list_id,
                "status": "subscribed",
                "updated_at": now,
            }
            for contact_id in written.values()
        ]
        # DO NOTHING: an import never re-subscribes someone who unsubscribed
        statement = insert_for(db, SUBSCRIPTIONS).on_conflict_do_nothing()
        if "list_joined" in watched:  # those who joined now start the list's automations
            joined = await db.execute(
                statement.returning(SUBSCRIPTIONS.c.contact_id), subscriptions
            )
            await enrol_many(db, "list_joined", [(c, str(list_id)) for c in joined.scalars()])
        else:
            await db.execute(statement, subscriptions)
    errors.sort()
    return len(unique) - len(skipped), errors


async def _values_upsert_contacts(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    import_id: uuid.UUID,
    unique: list[ContactRow],
    now: datetime,
) -> dict[str, uuid.UUID]:
    """SQLite: one multi-row ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``."""
    rows_values = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "email": row.email,
            "name": row.name,
            "attributes": row.attributes,
            "consent": "unknown",
            "consent_source": "",
            "consent_at": None,
            "import_id": import_id,
            "created_at": now,
            "updated_at": now,
        }
        for row in unique
    ]
    statement = insert_for(db, CONTACTS)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "email"],
        set_={
            "name": func.coalesce(func.nullif(excluded.name, ""), CONTACTS.c.name),
            "attributes": _merged_attributes(db, excluded),
            "import_id": excluded.import_id,
            "updated_at": excluded.updated_at,
        },
        where=or_(CONTACTS.c.import_id.is_(None), CONTACTS.c.import_id != import_id),
    ).returning(CONTACTS.c.id, CONTACTS.c.email)
    # executemany: compiled once and sent as multi-row VALUES by SQLAlchemy's
    # "insertmanyvalues", RETURNING included
    result = await db.execute(statement, rows_values)
    return {email: contact_id for contact_id, email in result.tuples()}
