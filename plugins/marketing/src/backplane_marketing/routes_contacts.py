"""``/api/marketing/contacts``: contacts, their timeline, merges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel, requires
from backplane_marketing.automations.engine import enrol, kick
from backplane_marketing.contacts import (
    add_event,
    contacts_out,
    create_contact,
    email_or_400,
    find_contact,
    page_of_contacts,
    update_contact,
)
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.merge import merge_contacts
from backplane_marketing.models import Contact, ContactEvent
from backplane_marketing.plugin import ADMIN, READ, WRITE
from backplane_marketing.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    EventIn,
    EventOut,
    MergeIn,
)
from backplane_marketing.settings import MarketingSettings

PerPage = Annotated[int, QueryParameter(ge=1, le=500, description="Items per page")]
After = Annotated[uuid.UUID | None, QueryParameter(description="`next` of the previous page")]


class ContactsController(Controller):
    path = "/contacts"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def list_contacts(
        self,
        db: NamedDependency[AsyncSession],
        limit: PerPage = 50,
        after: After = None,
        email: Annotated[
            str | None, QueryParameter(description="Only the contact with this address")
        ] = None,
    ) -> ContactPage:
        """Contacts, oldest first; ``email`` finds one by its address (normalised first)."""
        where = None if email is None else Contact.email == email_or_400(email)
        rows, following = await page_of_contacts(db, limit, after, where)
        return ContactPage(items=await contacts_out(db, rows), next=following)

    @post("/", guards=[requires(WRITE)])
    async def create_contact(
        self,
        data: JSONBody[ContactIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> ContactOut:
        """A new contact; 409 if one with the same normalised email exists."""
        assert kernel.tenant_id is not None
        contact = await create_contact(kernel.db, kernel.tenant_id, data, plugin_settings)
        await kick(kernel)
        return (await contacts_out(kernel.db, [contact]))[0]

    @get("/{contact_id:uuid}", guards=[requires(READ)])
    async def get_contact(
        self, contact_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> ContactOut:
        return (await contacts_out(db, [await find_contact(db, contact_id)]))[0]

    @patch("/{contact_id:uuid}", guards=[requires(WRITE)])
    async def update_contact(
        self,
        contact_id: FromPath[uuid.UUID],
        data: JSONBody[ContactPatch],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> ContactOut:
        """Change the contact; new tags and joined lists start the automations they
        trigger."""
        contact = await update_contact(kernel.db, contact_id, data, plugin_settings)
        await kick(kernel)
        return (await contacts_out(kernel.db, [contact]))[0]

    @delete("/{contact_id:uuid}", guards=[requires(WRITE)])
    async def delete_contact(
        self, contact_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Delete the contact with its tags, subscriptions and timeline."""
        contact = await find_contact(kernel.db, contact_id)
        await kernel.db.delete(contact)
        await kernel.audit.record("marketing.contact_deleted", target=("contact", contact_id))

    @get("/{contact_id:uuid}/events", guards=[requires(READ)])
    async def timeline(
        self,
        contact_id: FromPath[uuid.UUID],
        db: NamedDependency[AsyncSession],
        limit: PerPage = 50,
        before: Annotated[
            datetime | None, QueryParameter(description="Only events before this time")
        ] = None,
    ) -> list[EventOut]:
        """The contact's activity, newest first."""
        await find_contact(db, contact_id)
        query = select(ContactEvent).where(ContactEvent.contact_id == contact_id)
        if before is not None:
            query = query.where(ContactEvent.occurred_at < before)
        rows = await db.scalars(
            query.order_by(ContactEvent.occurred_at.desc(), ContactEvent.id).limit(limit)
        )
        return [
            EventOut(id=r.id, type=r.type, data=r.data, occurred_at=r.occurred_at) for r in rows
        ]

    @post("/{contact_id:uuid}/events", guards=[requires(WRITE)])
    async def add_event(
        self,
        contact_id: FromPath[uuid.UUID],
        data: JSONBody[EventIn],
        kernel: NamedDependency[Kernel],
    ) -> EventOut:
        """Record an activity (a custom event: segments can filter on it, automations
        triggered by its type start); the contact's lead score is recomputed with it."""
        from backplane_marketing.scoring.service import rescore_contacts

        db = kernel.db
        await find_contact(db, contact_id)
        at = data.occurred_at or datetime.now(UTC)
        if at.tzinfo is None:
            raise MarketingError("occurred_at needs a time zone (e.g. 2026-12-05T10:00:00Z)")
        event = add_event(db, contact_id, data.type, data.data, at.astimezone(UTC))
        await db.flush()
        await enrol(db, contact_id, "event", data.type)
        await rescore_contacts(kernel, [contact_id])
        await kick(kernel)
        return EventOut(
            id=event.id, type=event.type, data=event.data, occurred_at=event.occurred_at
        )

    @post("/{contact_id:uuid}/merge", guards=[requires(ADMIN)], status_code=200)
    async def merge(
        self,
        contact_id: FromPath[uuid.UUID],
        data: JSONBody[MergeIn],
        kernel: NamedDependency[Kernel],
    ) -> ContactOut:
        """Fold ``duplicate_id`` into this contact (attributes, tags, lists, timeline) and
        delete the duplicate; audited."""
        kept = await merge_contacts(kernel, contact_id, data.duplicate_id)
        return (await contacts_out(kernel.db, [kept]))[0]
