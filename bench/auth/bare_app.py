"""The baseline for ``bench/auth``: a plain Litestar app doing the Backplane route's query.

No authentication, no plugins, no tenant machinery: ``GET /items/{item_id}`` opens a plain
``AsyncSession`` per request (committed after the handler, like the kernel's request session),
runs ``select(Item).where(Item.id == item_id, Item.tenant_id == TENANT)`` and returns the same
msgspec struct. The engine is the kernel's (``backplane.db.engine.create_engine`` from the same
``BACKPLANE_*`` settings: same driver, pool and SQLite pragmas), so the two servers differ only
in what Backplane adds to a request. The tenant comes from ``BENCH_AUTH_TENANT_ID``.

Served by ``bench/auth/run.py`` with
``uvicorn bare_app:create_app --factory --log-level warning --no-access-log``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from litestar import Litestar, get
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from sqlalchemy import Integer, String, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class BareBase(DeclarativeBase):
    pass


class Item(BareBase):
    """The plugin's ``bench_auth_items`` table, mapped without Backplane."""

    __tablename__ = "bench_auth_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)


class ItemOut(msgspec.Struct):
    id: int
    name: str


def create_app() -> Litestar:
    from backplane.db.engine import create_engine
    from backplane.settings import load_settings

    tenant_id = uuid.UUID(os.environ["BENCH_AUTH_TENANT_ID"])
    engine = create_engine(load_settings())
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    async def provide_db() -> AsyncIterator[AsyncSession]:
        async with sessionmaker() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            else:
                await session.commit()

    @get("/items/{item_id:int}")
    async def get_item(item_id: int, db: AsyncSession) -> ItemOut:
        item = await db.scalar(select(Item).where(Item.id == item_id, Item.tenant_id == tenant_id))
        if item is None:
            raise NotFoundException(f"no item {item_id}")
        return ItemOut(id=item.id, name=item.name)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()

    return Litestar(
        route_handlers=[get_item],
        dependencies={"db": Provide(provide_db)},
        lifespan=[lifespan],
        debug=False,
    )
