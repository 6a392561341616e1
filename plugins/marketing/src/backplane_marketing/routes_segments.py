"""``/api/marketing/segments``: filters previewed with a count, saved as static or dynamic
segments, their members paged."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backplane import Kernel, requires
from backplane_marketing.contacts import contacts_out, page_of_contacts
from backplane_marketing.errors import ERROR_HANDLERS, TAGS, MarketingError
from backplane_marketing.models import Segment
from backplane_marketing.plugin import READ, WRITE
from backplane_marketing.schemas import ContactOut, ContactPage
from backplane_marketing.segment_store import (
    SegmentIn,
    SegmentOut,
    compile_filter,
    count_where,
    find_segment,
    materialise,
    segment_filter,
    segment_out,
)
from backplane_marketing.settings import MarketingSettings


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    filter: dict[str, Any]


class PreviewOut(msgspec.Struct, kw_only=True):
    count: int
    sample: list[ContactOut]


class SegmentsController(Controller):
    path = "/segments"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/preview", guards=[requires(READ)], status_code=200)
    async def preview(
        self,
        data: JSONBody[PreviewIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> PreviewOut:
        """How many contacts a filter matches, and the first ten."""
        where = await compile_filter(kernel.db, data.filter, plugin_settings)
        rows, _ = await page_of_contacts(kernel.db, 10, None, where)
        return PreviewOut(
            count=await count_where(kernel.db, where), sample=await contacts_out(kernel.db, rows)
        )

    @get("/", guards=[requires(READ)])
    async def list_segments(
        self, kernel: NamedDependency[Kernel], plugin_settings: NamedDependency[MarketingSettings]
    ) -> list[SegmentOut]:
        rows = await kernel.db.scalars(select(Segment).order_by(Segment.name))
        return [await segment_out(kernel.db, s, plugin_settings) for s in rows]

    @post("/", guards=[requires(WRITE)])
    async def create_segment(
        self,
        data: JSONBody[SegmentIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> SegmentOut:
        """A segment; a static one is materialised at once."""
        if not 1 <= len(data.name) <= 200:
            raise MarketingError("name: 1 to 200 characters")
        await compile_filter(kernel.db, data.filter, plugin_settings)
        segment = Segment(name=data.name, kind=data.kind, filter=data.filter)
        kernel.db.add(segment)
        try:
            async with kernel.db.begin_nested():
                await kernel.db.flush()
        except IntegrityError:
            raise MarketingError(f"a segment named {data.name!r} exists", 409) from None
        if segment.kind == "static":
            assert kernel.tenant_id is not None
            await materialise(kernel.db, kernel.tenant_id, segment, plugin_settings)
        return await segment_out(kernel.db, segment, plugin_settings)

    @get("/{segment_id:uuid}", guards=[requires(READ)])
    async def get_segment(
        self,
        segment_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> SegmentOut:
        return await segment_out(
            kernel.db, await find_segment(kernel.db, segment_id), plugin_settings
        )

    @post("/{segment_id:uuid}/refresh", guards=[requires(WRITE)], status_code=200)
    async def refresh(
        self,
        segment_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
    ) -> SegmentOut:
        """Re-materialise a static segment (a dynamic one is always current)."""
        segment = await find_segment(kernel.db, segment_id)
        if segment.kind != "static":
            raise MarketingError("only a static segment is materialised", 409)
        assert kernel.tenant_id is not None
        await materialise(kernel.db, kernel.tenant_id, segment, plugin_settings)
        return await segment_out(kernel.db, segment, plugin_settings)

    @get("/{segment_id:uuid}/contacts", guards=[requires(READ)])
    async def members(
        self,
        segment_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketingSettings],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        after: Annotated[uuid.UUID | None, QueryParameter()] = None,
    ) -> ContactPage:
        where = await segment_filter(kernel.db, segment_id, plugin_settings)
        rows, following = await page_of_contacts(kernel.db, limit, after, where)
        return ContactPage(items=await contacts_out(kernel.db, rows), next=following)

    @delete("/{segment_id:uuid}", guards=[requires(WRITE)])
    async def delete_segment(
        self, segment_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        await kernel.db.delete(await find_segment(kernel.db, segment_id))
