"""The marketplace plugin's hooks: everything the kernel needs to know, nothing heavy imported
eagerly (routes load when the app is built)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane import Permission, PluginInfo, hookimpl
from backplane_marketplace.settings import MarketplaceSettings

PUBLISH = "marketplace.publish"
"""Apply to publish for the tenant and manage its signing keys."""
READ = "marketplace.read"
"""See the tenant's own publisher profile and keys."""
INSTALL = "marketplace.install"
"""Install and uninstall listings for the tenant."""
REVIEW = "platform.marketplace.review"
"""Platform operators only: decide publishers' applications (and, later, submissions)."""
FEDERATE = "platform.marketplace.federation"
"""Platform operators only: subscribe this deployment to other deployments' catalogs."""

plugin = PluginInfo(
    name="marketplace",
    requires_core=">=0.1,<0.2",
    settings=MarketplaceSettings,
    description="Model marketplace: publishers reviewed by platform operators, signing keys",
)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane_marketplace.routes_deprecation import DeprecationController
    from backplane_marketplace.routes_federation import (
        FederatedController,
        PublicCatalogController,
        SubscriptionsController,
    )
    from backplane_marketplace.routes_follow import FollowController
    from backplane_marketplace.routes_installs import CatalogController, InstallsController
    from backplane_marketplace.routes_listings import ListingsController
    from backplane_marketplace.routes_publishers import PublisherController
    from backplane_marketplace.routes_review import ReviewController
    from backplane_marketplace.routes_reviews import ReviewsController
    from backplane_marketplace.routes_statements import StatementsController

    register(
        PublisherController,
        ListingsController,
        ReviewController,
        CatalogController,
        InstallsController,
        StatementsController,
        ReviewsController,
        DeprecationController,
        FollowController,
        SubscriptionsController,
        FederatedController,
    )
    register(PublicCatalogController, public=True)


@hookimpl
def register_migrations(register: Any) -> None:
    from backplane_marketplace.models import Publisher

    register(files(__package__) / "migrations", branch="marketplace", metadata=Publisher.metadata)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(code=READ, roles=("owner", "admin", "member", "viewer")),
        Permission(code=PUBLISH, roles=("owner", "admin")),
        Permission(code=INSTALL, roles=("owner", "admin")),
        Permission(
            code=REVIEW,
            roles=(),
            description="Review marketplace publishers (platform operators)",
        ),
        Permission(
            code=FEDERATE,
            roles=(),
            description="Subscribe to other deployments' marketplace catalogs (operators)",
        ),
    )


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_marketplace.privacy import export

    await export(kernel, archive, subject)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_marketplace.privacy import erase

    return await erase(kernel, subject)


@hookimpl
def register_meters(register: Any) -> None:
    from backplane_marketplace.charging import METERS

    register(*METERS)


@hookimpl
async def invoice_closing(
    kernel: Any, period_start: Any, period_end: Any, currency: str
) -> list[Any]:
    from backplane_marketplace.charging import invoice_items

    return await invoice_items(kernel, period_start, period_end, currency)


@hookimpl
def register_event_types(register: Any) -> None:
    from backplane import EventType

    # Every member may read the notices (``marketplace.read``): live to the tenant's stream,
    # and to its webhook endpoints subscribed by name.
    register(
        EventType(
            name="marketplace.upgrade_pending",
            description="A following install will move to a newly approved version: when, and "
            "at what tariff (the notice of GET /api/marketplace/notices)",
            live=True,
        ),
        EventType(
            name="marketplace.upgraded",
            description="A following install moved to a new version (its notice)",
            live=True,
        ),
    )


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane import Task
    from backplane_marketplace.follow import CHECK_SCHEDULE, follow_latest

    # Following installs: announce new versions, move those whose delay has passed.
    register(
        Task(actor=follow_latest, queue="marketplace", schedule=CHECK_SCHEDULE, per_tenant=True)
    )


@hookimpl
def register_commands(cli: Any) -> None:
    from backplane_marketplace.cli import marketplace_group

    cli.add_command(marketplace_group)


@hookimpl
async def model_loading(kernel: Any, model: Any) -> None:
    """An installed model serves only while its version's signature verifies with a key its
    publisher has not revoked (checked again, not only at install)."""
    if model.source != "marketplace":
        return
    from backplane_marketplace.installs import check_loading

    await check_loading(kernel, model)
