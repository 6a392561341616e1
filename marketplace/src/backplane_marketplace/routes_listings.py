"""``/api/marketplace/listings``: an approved publisher's model cards and their versions
(submitted through the automatic checks, then reviewed); all audited."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from backplane import Kernel, Principal, requires
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS, MarketplaceError
from backplane_marketplace.federation_schemas import FederationIn
from backplane_marketplace.listings import (
    create_listing,
    listing_out,
    own_listing,
    submit_version,
    versions_out,
)
from backplane_marketplace.models import Listing
from backplane_marketplace.plugin import PUBLISH, READ
from backplane_marketplace.publishers import publisher_of
from backplane_marketplace.schemas import ListingIn, ListingOut, VersionIn, VersionOut
from backplane_marketplace.settings import MarketplaceSettings

Req = Request[Principal, Any, Any]


class ListingsController(Controller):
    path = "/listings"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @post("/", guards=[requires(PUBLISH)])
    async def create(
        self, request: Req, data: JSONBody[ListingIn], kernel: NamedDependency[Kernel]
    ) -> ListingOut:
        """A new listing (model card) of the tenant's approved publisher."""
        publisher = await publisher_of(kernel.db, request.user.tenant_id)
        listing = await create_listing(kernel.db, publisher, data)
        await kernel.audit.record(
            "marketplace.listing_created",
            target=("listing", listing.id),
            details={"slug": data.slug},
        )
        return await listing_out(kernel.db, listing)

    @get("/mine", guards=[requires(READ)])
    async def mine(self, request: Req, kernel: NamedDependency[Kernel]) -> list[ListingOut]:
        """The publisher's listings (none for a tenant that is no publisher), every version
        with its state (in review, changes requested, approved, rejected) and the reasons."""
        try:
            publisher = await publisher_of(kernel.db, request.user.tenant_id)
        except MarketplaceError:
            return []  # not a publisher: no listings
        rows = await kernel.db.scalars(
            select(Listing).where(Listing.publisher_id == publisher.id).order_by(Listing.created_at)
        )
        return [await listing_out(kernel.db, r) for r in rows]

    @post("/{listing_id:uuid}/versions", guards=[requires(PUBLISH)])
    async def submit(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        data: JSONBody[VersionIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> VersionOut:
        """Submit an immutable version: signature, validation, examples and latency are
        checked now (422 naming the first failure); then it waits for review."""
        publisher = await publisher_of(kernel.db, request.user.tenant_id)
        listing = await own_listing(kernel.db, publisher, listing_id)
        row = await submit_version(
            kernel, publisher, listing, data, plugin_settings, request.user.user_id
        )
        await kernel.audit.record(
            "marketplace.version_submitted",
            target=("version", row.id),
            details={"listing": listing.slug, "version": row.version, "sha256": row.sha256},
        )
        return (await versions_out(kernel.db, [row]))[0]

    @post("/{listing_id:uuid}/federation", status_code=200, guards=[requires(PUBLISH)])
    async def federate(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        data: JSONBody[FederationIn],
        kernel: NamedDependency[Kernel],
    ) -> ListingOut:
        """Opt the listing in to federation (``{"federated": true}``) or out: its approved
        versions are then in this deployment's signed catalog and their artifacts fetchable by
        subscribing deployments, which pay nothing here (free, or licensed out of band)."""
        publisher = await publisher_of(kernel.db, request.user.tenant_id)
        listing = await own_listing(kernel.db, publisher, listing_id)
        listing.federated = data.federated
        await kernel.db.flush()
        await kernel.audit.record(
            "marketplace.listing_federation",
            target=("listing", listing.id),
            details={"slug": listing.slug, "federated": data.federated},
        )
        return await listing_out(kernel.db, listing)
