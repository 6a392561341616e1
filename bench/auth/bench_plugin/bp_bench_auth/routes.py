"""``GET /api/bench_auth/items/{item_id}``: one row of the caller's tenant, or 404."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bp_bench_auth.models import BenchItem


class ItemOut(msgspec.Struct):
    id: int
    name: str


@get("/items/{item_id:int}", summary="Read one item of the caller's tenant")
async def get_item(item_id: int, db: NamedDependency[AsyncSession]) -> ItemOut:
    # The session is bound to the caller's tenant: the kernel adds `tenant_id = :tenant`.
    item = await db.scalar(select(BenchItem).where(BenchItem.id == item_id))
    if item is None:
        raise NotFoundException(f"no item {item_id}")
    return ItemOut(id=item.id, name=item.name)
