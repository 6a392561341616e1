"""``GET /api/marketplace/statements``: the caller's publisher's statements, newest first,
with per-listing aggregates only (``backplane marketplace close-period`` makes them)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from sqlalchemy import select

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS, MarketplaceError
from backplane_marketplace.money_models import Statement
from backplane_marketplace.plugin import READ
from backplane_marketplace.publishers import publisher_of
from backplane_marketplace.schemas import StatementListingOut, StatementOut

Req = Request[Principal, Any, Any]


class StatementsController(Controller):
    path = "/statements"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def mine(self, request: Req, kernel: NamedDependency[Kernel]) -> list[StatementOut]:
        """Statements of the tenant's publisher (empty for a tenant that does not publish)."""
        try:
            publisher = await publisher_of(kernel.db, request.user.tenant_id)
        except MarketplaceError:
            return []
        rows = await kernel.db.scalars(
            select(Statement)
            .where(Statement.publisher_id == publisher.id)
            .order_by(Statement.period_start.desc(), Statement.currency)
            .limit(120)
        )
        return [statement_out(s) for s in rows]


def statement_out(row: Statement) -> StatementOut:
    fields = {
        name: getattr(row, name) for name in StatementOut.__struct_fields__ if name != "listings"
    }
    listings = msgspec.convert(row.listings, list[StatementListingOut])
    return StatementOut(**fields, listings=listings)
