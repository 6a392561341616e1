"""``/api/marketplace/catalog`` (approved listings: search, filters, sort) and
``/api/marketplace/installs`` (a consumer's installs, called through V2 under their names)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import exists, func, or_, select

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS
from backplane_marketplace.installs import install, installs_out, uninstall
from backplane_marketplace.listings import listing_out
from backplane_marketplace.models import Listing, ListingVersion
from backplane_marketplace.plugin import INSTALL, READ
from backplane_marketplace.reviews import rating_table
from backplane_marketplace.schemas import InstallIn, InstallOut, ListingOut, PriceModel

Req = Request[Principal, Any, Any]
SORTS: dict[str, tuple[Any, ...]] = {
    "recent": (Listing.created_at.desc(), Listing.id),
    "installs": (Listing.installs.desc(), Listing.id),
    "title": (Listing.title, Listing.id),
}


class CatalogController(Controller):
    path = "/catalog"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/", guards=[requires(READ)])
    async def search(
        self,
        kernel: NamedDependency[Kernel],
        q: FromQuery[str | None] = None,
        task: FromQuery[str | None] = None,
        tag: FromQuery[str | None] = None,
        publisher_id: FromQuery[uuid.UUID | None] = None,
        price_model: FromQuery[PriceModel | None] = None,
        sort: FromQuery[Literal["recent", "installs", "title", "rating"]] = "recent",
    ) -> list[ListingOut]:
        """Listings with an approved version (only approved versions shown): ``q`` in the
        title or description, ``task``, ``tag``, ``publisher_id``, ``price_model`` (an
        approved version priced so); sorted by ``sort`` (``rating``: the average, then the
        number of ratings, unrated last)."""
        approved = exists().where(
            ListingVersion.listing_id == Listing.id, ListingVersion.state == "approved"
        )
        query = select(Listing).where(approved)
        if price_model:
            query = query.where(
                exists().where(
                    ListingVersion.listing_id == Listing.id,
                    ListingVersion.state == "approved",
                    ListingVersion.price_model == price_model,
                )
            )
        order = SORTS.get(sort)
        if order is None:  # by rating
            ratings = rating_table()
            query = query.outerjoin(ratings, ratings.c.listing_id == Listing.id)
            order = (
                func.coalesce(ratings.c.average, 0).desc(),
                func.coalesce(ratings.c.count, 0).desc(),
                Listing.id,
            )
        if q:
            pattern = f"%{q.lower()}%"
            query = query.where(
                or_(
                    func.lower(Listing.title).like(pattern),
                    func.lower(Listing.description).like(pattern),
                )
            )
        if task:
            query = query.where(Listing.task == task)
        if publisher_id:
            query = query.where(Listing.publisher_id == publisher_id)
        rows = list(await kernel.db.scalars(query.order_by(*order).limit(500)))
        if tag:
            rows = [r for r in rows if tag in (r.tags or [])]
        return [await listing_out(kernel.db, r, states=("approved",)) for r in rows]


class InstallsController(Controller):
    path = "/installs"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(INSTALL)])
    async def create(
        self, request: Req, data: JSONBody[InstallIn], kernel: NamedDependency[Kernel]
    ) -> InstallOut:
        """Install a listing (an approved version, the latest by default) as the tenant's model
        ``name``; the signature is verified again first."""
        made = await install(kernel, data, request.user.user_id)
        await kernel.audit.record(
            "marketplace.installed",
            target=("install", made.id),
            details={
                "listing": made.listing_slug,
                "version": made.version,
                "name": made.model_name,
            },
        )
        return made

    @get("/", guards=[requires(READ)])
    async def list_installs(self, kernel: NamedDependency[Kernel]) -> list[InstallOut]:
        """The tenant's installs."""
        return await installs_out(kernel)

    @delete("/{install_id:uuid}", guards=[requires(INSTALL)])
    async def remove(
        self, install_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Uninstall: the model under the install's name is withdrawn."""
        row = await uninstall(kernel, install_id)
        await kernel.audit.record(
            "marketplace.uninstalled", target=("install", row.id), details={"name": row.model_name}
        )
