"""``/api/marketplace/listings/{listing_id}/versions/{version_id}/deprecation``: the publisher
deprecates an approved version as of a date (PUT) or withdraws a deprecation still to come
(DELETE); audited."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from backplane import Kernel, Principal, requires
from backplane_marketplace.deprecation import deprecate
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS, MarketplaceError
from backplane_marketplace.listings import own_listing, versions_out
from backplane_marketplace.models import ListingVersion
from backplane_marketplace.plugin import PUBLISH
from backplane_marketplace.publishers import publisher_of
from backplane_marketplace.schemas import DeprecateIn, VersionOut

Req = Request[Principal, Any, Any]
PATH = "/{listing_id:uuid}/versions/{version_id:uuid}/deprecation"


async def _own_version(
    kernel: Kernel, request: Req, listing_id: uuid.UUID, version_id: uuid.UUID
) -> ListingVersion:
    publisher = await publisher_of(kernel.db, request.user.tenant_id)
    listing = await own_listing(kernel.db, publisher, listing_id)
    row = await kernel.db.scalar(
        select(ListingVersion)
        .where(ListingVersion.id == version_id, ListingVersion.listing_id == listing.id)
        .with_for_update()
    )
    if row is None:
        raise MarketplaceError(f"no version {version_id} of listing {listing_id}", 404)
    return row


class DeprecationController(Controller):
    path = "/listings"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @put(PATH, guards=[requires(PUBLISH)])
    async def set_deprecation(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        version_id: FromPath[uuid.UUID],
        data: JSONBody[DeprecateIn],
        kernel: NamedDependency[Kernel],
    ) -> VersionOut:
        """Deprecate an approved version from ``as_of`` (no new installs from then; existing
        installs keep calling it and show the note); changeable until the date has passed."""
        row = await _own_version(kernel, request, listing_id, version_id)
        deprecate(row, data.as_of, data.note)
        await kernel.db.flush()
        await kernel.audit.record(
            "marketplace.version_deprecated",
            target=("version", row.id),
            details={"version": row.version, "as_of": data.as_of.isoformat()},
        )
        return (await versions_out(kernel.db, [row]))[0]

    @delete(PATH, guards=[requires(PUBLISH)], status_code=200)
    async def withdraw_deprecation(
        self,
        request: Req,
        listing_id: FromPath[uuid.UUID],
        version_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
    ) -> VersionOut:
        """Withdraw a deprecation whose date has not come (409 once it has)."""
        row = await _own_version(kernel, request, listing_id, version_id)
        deprecate(row, None, "")
        await kernel.db.flush()
        await kernel.audit.record(
            "marketplace.version_undeprecated",
            target=("version", row.id),
            details={"version": row.version},
        )
        return (await versions_out(kernel.db, [row]))[0]
