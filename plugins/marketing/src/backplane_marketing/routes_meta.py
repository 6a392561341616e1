"""``/api/marketing/attributes`` (typed attribute definitions) and ``/api/marketing/lists``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import requires
from backplane_marketing.attributes import AttributeIn, AttributeOut
from backplane_marketing.dialect import dialect_name
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.models import AttributeDefinition, Contact, MailingList, Subscription
from backplane_marketing.plugin import ADMIN, READ, WRITE
from backplane_marketing.settings import MarketingSettings


class ListIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ListOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    description: str
    subscribed: int
    created_at: datetime


def _attribute_out(row: AttributeDefinition) -> AttributeOut:
    return AttributeOut(key=row.key, type=row.type, label=row.label, choices=row.choices)


class AttributesController(Controller):
    path = "/attributes"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def list_attributes(self, db: NamedDependency[AsyncSession]) -> list[AttributeOut]:
        rows = await db.scalars(select(AttributeDefinition).order_by(AttributeDefinition.key))
        return [_attribute_out(r) for r in rows]

    @post("/", guards=[requires(ADMIN)])
    async def define_attribute(
        self,
        data: JSONBody[AttributeIn],
        db: NamedDependency[AsyncSession],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> AttributeOut:
        """A new attribute key with its type (fixed: values already stored rely on it)."""
        if data.choices is not None and data.type not in ("string", "list"):
            raise MarketingError("choices apply to string and list attributes only", 422)
        count = await db.scalar(select(func.count()).select_from(AttributeDefinition))
        if int(count or 0) >= plugin_settings.max_attributes:
            raise MarketingError(
                f"a tenant may define at most {plugin_settings.max_attributes} attributes "
                "(setting max_attributes)",
                422,
            )
        row = AttributeDefinition(
            key=data.key, type=data.type, label=data.label, choices=data.choices
        )
        try:
            async with db.begin_nested():  # added inside: begin_nested flushes what is pending
                db.add(row)
                await db.flush()
        except IntegrityError:
            raise MarketingError(f"attribute {data.key!r} exists", 409) from None
        return _attribute_out(row)

    @delete("/{key:str}", guards=[requires(ADMIN)])
    async def delete_attribute(self, key: FromPath[str], db: NamedDependency[AsyncSession]) -> None:
        """Forget the definition and remove its values from every contact (a key defined again
        later, perhaps with another type, starts empty)."""
        row = await db.scalar(select(AttributeDefinition).where(AttributeDefinition.key == key))
        if row is None:
            raise MarketingError(f"no attribute {key!r}", 404)
        if dialect_name(db) == "postgresql":
            stripped: Any = Contact.attributes.op("-")(key)
        else:
            stripped = func.json_remove(Contact.attributes, f'$."{key}"')
        await db.execute(
            update(Contact)
            .where(Contact.attributes[key].is_not(None))
            .values(attributes=stripped)
            .execution_options(synchronize_session=False)
        )
        await db.delete(row)


class ListsController(Controller):
    path = "/lists"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def list_lists(self, db: NamedDependency[AsyncSession]) -> list[ListOut]:
        subscribed = (
            select(Subscription.list_id, func.count().label("n"))
            .where(Subscription.status == "subscribed")
            .group_by(Subscription.list_id)
            .subquery()
        )
        rows = await db.execute(
            select(MailingList, func.coalesce(subscribed.c.n, 0))
            .outerjoin(subscribed, subscribed.c.list_id == MailingList.id)
            .order_by(MailingList.name)
        )
        return [
            ListOut(
                id=m.id,
                name=m.name,
                description=m.description,
                subscribed=int(n),
                created_at=m.created_at,
            )
            for m, n in rows.tuples()
        ]

    @post("/", guards=[requires(WRITE)])
    async def create_list(
        self, data: JSONBody[ListIn], db: NamedDependency[AsyncSession]
    ) -> ListOut:
        row = MailingList(name=data.name, description=data.description)
        try:
            async with db.begin_nested():  # added inside: begin_nested flushes what is pending
                db.add(row)
                await db.flush()
        except IntegrityError:
            raise MarketingError(f"a list named {data.name!r} exists", 409) from None
        return ListOut(
            id=row.id,
            name=row.name,
            description=row.description,
            subscribed=0,
            created_at=row.created_at,
        )

    @delete("/{list_id:uuid}", guards=[requires(WRITE)])
    async def delete_list(
        self, list_id: FromPath[uuid.UUID], db: NamedDependency[AsyncSession]
    ) -> None:
        row = await db.scalar(select(MailingList).where(MailingList.id == list_id))
        if row is None:
            raise MarketingError(f"no list {list_id}", 404)
        await db.delete(row)
