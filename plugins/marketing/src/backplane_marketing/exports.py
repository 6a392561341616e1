"""Contacts as CSV, streamed page by page (keyset paging, one page in memory at a time): email,
name, consent, tags, then one column per attribute definition."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import literal, select, tuple_

from backplane_marketing.models import AttributeDefinition, Contact, ContactTag

PAGE = 1000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


async def export_rows(kernel: Any, where: Any) -> AsyncIterator[bytes]:
    """The CSV's bytes; reads in a session of its own (the response streams after the
    request's transaction ended)."""
    async with kernel.tenant(kernel.tenant_id) as view:
        db = view.db
        keys = list(
            await db.scalars(select(AttributeDefinition.key).order_by(AttributeDefinition.key))
        )
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["email", "name", "consent", "consent_source", "tags", *keys])
        yield out.getvalue().encode()
        anchor: tuple[Any, Any] | None = None
        while True:
            query = select(Contact)
            if where is not None:
                query = query.where(where)
            if anchor is not None:
                query = query.where(
                    tuple_(Contact.created_at, Contact.id)
                    > tuple_(
                        literal(anchor[0], Contact.created_at.type),
                        literal(anchor[1], Contact.id.type),
                    )
                )
            page = list(
                await db.scalars(query.order_by(Contact.created_at, Contact.id).limit(PAGE))
            )
            if not page:
                return
            tags: dict[Any, list[str]] = defaultdict(list)
            for contact_id, tag in await db.execute(
                select(ContactTag.contact_id, ContactTag.tag)
                .where(ContactTag.contact_id.in_([c.id for c in page]))
                .order_by(ContactTag.tag)
            ):
                tags[contact_id].append(tag)
            out.seek(0)
            out.truncate()
            for c in page:
                writer.writerow(
                    [c.email, c.name, c.consent, c.consent_source, "|".join(tags[c.id])]
                    + [_cell(c.attributes.get(k)) for k in keys]
                )
            yield out.getvalue().encode()
            anchor = (page[-1].created_at, page[-1].id)
            db.expunge_all()
