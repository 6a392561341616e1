"""``/api/marketplace/federation``: the signed catalog, its key and its artifacts (public: see
:mod:`backplane_marketplace.federation`), platform operators' subscriptions to other
deployments' catalogs, and tenants' browsing and installs of their listings."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, or_, select

from backplane import Kernel, Principal, requires
from backplane_marketplace import federation
from backplane_marketplace.errors import ERROR_HANDLERS, TAGS
from backplane_marketplace.federation_models import FederatedListing, Subscription
from backplane_marketplace.federation_schemas import (
    CatalogKeyOut,
    FederatedInstallIn,
    FederatedInstallOut,
    FederatedListingOut,
    SubscriptionIn,
    SubscriptionOut,
)
from backplane_marketplace.plugin import FEDERATE, INSTALL, READ
from backplane_marketplace.settings import MarketplaceSettings

Req = Request[Principal, Any, Any]


class PublicCatalogController(Controller):
    """Public, deliberately: the catalog holds only what publishers chose to federate, and
    every byte of it is signed (by the deployment, and by each publisher)."""

    path = "/federation"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/key")
    async def key(self, kernel: NamedDependency[Kernel]) -> CatalogKeyOut:
        """This deployment's catalog public key, for subscribing operators to pin (compare it
        with ``backplane marketplace federation key`` here, through a channel you trust)."""
        return federation.catalog_key(kernel)

    @get("/catalog", media_type="application/json")
    async def catalog(
        self, kernel: NamedDependency[Kernel], plugin_settings: NamedDependency[MarketplaceSettings]
    ) -> Response[bytes]:
        """The signed catalog of federated listings; the signature of its exact bytes is in
        the ``Backplane-Catalog-Signature`` header."""
        body, signature = await federation.build_catalog(kernel, plugin_settings)
        return Response(
            body,
            media_type="application/json",
            headers={federation.SIGNATURE_HEADER: signature, "Cache-Control": "no-store"},
        )

    @get("/artifacts/{sha256:str}", media_type="application/octet-stream")
    async def artifact(
        self, sha256: FromPath[str], kernel: NamedDependency[Kernel]
    ) -> Response[bytes]:
        """The artifact of an approved version in the catalog (404 for any other digest)."""
        data = await federation.served_artifact(kernel, sha256)
        return Response(data, media_type="application/octet-stream")


class SubscriptionsController(Controller):
    """Platform operators only (``platform.marketplace.federation``); audited."""

    path = "/federation/subscriptions"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS
    guards = [requires(FEDERATE)]

    @post("/")
    async def create(
        self,
        request: Req,
        data: JSONBody[SubscriptionIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> SubscriptionOut:
        """Subscribe to the catalog at ``url`` verified with the pinned ``public_key``: fetched
        and verified now (502 naming what failed, nothing stored)."""
        row = await federation.subscribe(kernel.db, data, plugin_settings, request.user.user_id)
        await kernel.audit.record(
            "marketplace.subscription_added",
            target=("subscription", row.id),
            details={"url": row.url, "key_fingerprint": row.key_fingerprint},
        )
        return await federation.subscription_out(kernel.db, row)

    @get("/")
    async def list_subscriptions(self, kernel: NamedDependency[Kernel]) -> list[SubscriptionOut]:
        rows = await kernel.db.scalars(
            select(Subscription).order_by(Subscription.created_at, Subscription.id)
        )
        return [await federation.subscription_out(kernel.db, r) for r in rows]

    @post("/{subscription_id:uuid}/refresh", status_code=200)
    async def refresh(
        self,
        subscription_id: FromPath[uuid.UUID],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> SubscriptionOut:
        """Fetch the catalog again (verified as on subscribing; an older one is refused)."""
        row = await federation.refresh(kernel.db, subscription_id, plugin_settings)
        await kernel.audit.record(
            "marketplace.subscription_refreshed",
            target=("subscription", row.id),
            details={"url": row.url, "issued_at": row.issued_at.isoformat()},
        )
        return await federation.subscription_out(kernel.db, row)

    @delete("/{subscription_id:uuid}")
    async def remove(
        self, subscription_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Unsubscribe: its listings go; installs made from it stay installed."""
        row = await federation.unsubscribe(kernel.db, subscription_id)
        await kernel.audit.record(
            "marketplace.subscription_removed",
            target=("subscription", row.id),
            details={"url": row.url},
        )


class FederatedController(Controller):
    """A tenant's view: the subscribed catalogs' listings, and its installs of them."""

    path = "/federation"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get("/listings", guards=[requires(READ)])
    async def listings(
        self,
        kernel: NamedDependency[Kernel],
        q: FromQuery[str | None] = None,
        task: FromQuery[str | None] = None,
    ) -> list[FederatedListingOut]:
        """Listings of every subscribed catalog: ``q`` in the title or description, ``task``."""
        query = select(FederatedListing, Subscription.deployment).join(
            Subscription, Subscription.id == FederatedListing.subscription_id
        )
        if q:
            pattern = f"%{q.lower()[:100]}%"
            query = query.where(
                or_(
                    func.lower(FederatedListing.title).like(pattern),
                    func.lower(FederatedListing.description).like(pattern),
                )
            )
        if task:
            query = query.where(FederatedListing.task == task)
        rows = await kernel.db.execute(
            query.order_by(FederatedListing.title, FederatedListing.id).limit(500)
        )
        return [federation.listing_out(item, name) for item, name in rows.tuples()]

    @post("/installs", guards=[requires(INSTALL)])
    async def install(
        self,
        request: Req,
        data: JSONBody[FederatedInstallIn],
        kernel: NamedDependency[Kernel],
        plugin_settings: NamedDependency[MarketplaceSettings],
    ) -> FederatedInstallOut:
        """Install a federated listing as the tenant's model ``name``: the artifact is fetched,
        checked against the catalog's SHA-256 and the publisher's signature, validated and
        stored here (502 naming what failed, nothing installed)."""
        made = await federation.install(kernel, data, plugin_settings, request.user.user_id)
        await kernel.audit.record(
            "marketplace.federated_installed",
            target=("federated_install", made.id),
            details={
                "listing": made.slug,
                "version": made.version,
                "sha256": made.sha256,
                "from": made.subscription_url,
                "name": made.model_name,
            },
        )
        return made

    @get("/installs", guards=[requires(READ)])
    async def list_installs(self, kernel: NamedDependency[Kernel]) -> list[FederatedInstallOut]:
        return await federation.installs_out(kernel)

    @delete("/installs/{install_id:uuid}", guards=[requires(INSTALL)])
    async def remove(
        self, install_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> None:
        """Uninstall: the model under the install's name is withdrawn."""
        row = await federation.uninstall(kernel, install_id)
        await kernel.audit.record(
            "marketplace.federated_uninstalled",
            target=("federated_install", row.id),
            details={"name": row.model_name},
        )
