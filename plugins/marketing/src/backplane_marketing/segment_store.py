"""Saved segments: ``dynamic`` ones compile their filter whenever they are used; ``static``
ones keep the members their filter matched when (re)materialised, with one
``INSERT ... SELECT`` (the database copies the ids, Python never sees them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Table, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketing.attributes import definitions_of
from backplane_marketing.dialect import dialect_name
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import AttributeDefinition, Contact, Segment, SegmentMember
from backplane_marketing.segments import Compiler, decode_filter
from backplane_marketing.settings import MarketingSettings

MEMBERS: Table = SegmentMember.__table__  # type: ignore[assignment]


class SegmentIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    kind: Literal["static", "dynamic"] = "dynamic"
    filter: dict[str, Any] = msgspec.field(default_factory=dict)


class SegmentOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    kind: str
    filter: dict[str, Any]
    count: int
    materialised_at: datetime | None
    created_at: datetime


async def compile_filter(
    db: AsyncSession, raw: dict[str, Any], settings: MarketingSettings
) -> ColumnElement[bool]:
    """The filter checked (400/422 naming the problem) and compiled for this tenant."""
    tree = decode_filter(raw, settings.max_segment_depth, settings.max_segment_nodes)
    definitions = definitions_of(await db.scalars(select(AttributeDefinition)))
    return Compiler(definitions, dialect_name(db)).compile(tree)


async def find_segment(db: AsyncSession, segment_id: uuid.UUID) -> Segment:
    segment = await db.scalar(select(Segment).where(Segment.id == segment_id))
    if segment is None:
        raise MarketingError(f"no segment {segment_id}", 404)
    return segment


async def segment_filter(
    db: AsyncSession, segment_id: uuid.UUID, settings: MarketingSettings | None = None
) -> ColumnElement[bool]:
    """Which contacts are in the segment, as a condition on ``Contact``."""
    segment = await find_segment(db, segment_id)
    if segment.kind == "static":
        members = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment.id)
        return Contact.id.in_(members)
    return await compile_filter(db, segment.filter, settings or MarketingSettings())


async def count_where(db: AsyncSession, where: ColumnElement[bool]) -> int:
    return int(await db.scalar(select(func.count()).select_from(Contact).where(where)) or 0)


async def materialise(
    db: AsyncSession, tenant_id: uuid.UUID, segment: Segment, settings: MarketingSettings
) -> None:
    """Replace a static segment's members with the contacts its filter matches now."""
    where = await compile_filter(db, segment.filter, settings)
    await db.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment.id))
    chosen = select(
        literal(tenant_id, SegmentMember.tenant_id.type),
        literal(segment.id, SegmentMember.segment_id.type),
        Contact.id,
    ).where(where)
    await db.execute(insert(MEMBERS).from_select(["tenant_id", "segment_id", "contact_id"], chosen))
    segment.materialised_at = datetime.now(UTC)


async def segment_out(
    db: AsyncSession, segment: Segment, settings: MarketingSettings
) -> SegmentOut:
    where = await segment_filter(db, segment.id, settings)
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        kind=segment.kind,
        filter=segment.filter,
        count=await count_where(db, where),
        materialised_at=segment.materialised_at,
        created_at=segment.created_at,
    )
