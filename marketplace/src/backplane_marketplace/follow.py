"""Following installs: installed with ``mode: "follow"``, an install moves to each newly
approved version of its listing (the latest approved one that is not deprecated), with notice.

Each tenant's check (:func:`sync`: the per-tenant task ``follow_latest`` every ten minutes, at
the time an announced move is due (queued with ``kernel.tasks.enqueue_at`` when it is
announced), and before the tenant's own upgrade request) finds, for each following install,
the listing's latest version. A version newer than the install's and not yet announced is
announced: a ``upgrade_pending`` notice (``GET /api/marketplace/notices``, and on the install:
``pending_version``, ``upgrade_at``) naming the version, its tariff and when the install moves,
``follow_upgrade_delay_s`` later (setting, default 7 days). When that time has come — or at once
when the tenant accepts (``POST /api/marketplace/installs/{id}/upgrade``) — the install moves:
the new version's signature is verified again, the tenant's model under the install's name is
replaced by the new artifact (same name: the tenant's calls keep working), the install takes
the new version's tariff, and an ``upgraded`` notice records it. Pinned installs never move.
The checks run in the tenant's own session: nothing crosses tenants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backplane import Kernel, RegistryError
from backplane_marketplace.community_models import Notice
from backplane_marketplace.deprecation import aware, deprecated_now
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import Install, Listing, ListingVersion

CHECK_SCHEDULE = "*/10 * * * *"
"""How often each tenant looks for new versions of the listings it follows (a task per tenant
each time: new versions are announced ``follow_upgrade_delay_s`` before they move, so minutes
matter little; the moves themselves are queued for their time)."""
WAKE_SLACK = timedelta(seconds=1)
"""Added to a move's time: a worker whose clock runs a little behind still finds it due."""


async def latest_version(
    kernel: Kernel, listing_id: object, now: datetime
) -> ListingVersion | None:
    rows = await kernel.db.scalars(
        select(ListingVersion)
        .where(ListingVersion.listing_id == listing_id, ListingVersion.state == "approved")
        .order_by(ListingVersion.submitted_at.desc(), ListingVersion.id.desc())
    )
    return next((r for r in rows if not deprecated_now(r, now)), None)


async def _notice(
    kernel: Kernel, install: Install, kind: str, version: ListingVersion, message: str, at: datetime
) -> None:
    db = kernel.db
    try:
        async with db.begin_nested():
            db.add(
                Notice(
                    tenant_id=kernel.tenant_id,
                    install_id=install.id,
                    listing_id=install.listing_id,
                    kind=kind,
                    to_version_id=version.id,
                    message=message,
                    effective_at=at,
                )
            )
            await db.flush()
            # the same notice as a platform event: the tenant's live stream and webhooks
            await kernel.events.emit(
                f"marketplace.{kind}",
                {
                    "install_id": str(install.id),
                    "model": install.model_name,
                    "listing_id": str(install.listing_id),
                    "version": version.version,
                    "effective_at": at.isoformat(),
                    "message": message,
                },
            )
    except IntegrityError:
        pass  # told already


async def move(kernel: Kernel, install: Install, version: ListingVersion) -> None:
    """Replace the install's model by ``version``'s artifact, under the same name."""
    from backplane_marketplace.installs import report_of, verify_version

    await verify_version(kernel, version)
    listing = await kernel.db.get(Listing, install.listing_id)
    slug = listing.slug if listing is not None else str(install.listing_id)
    previous = await kernel.db.get(ListingVersion, install.version_id)
    try:
        await kernel.models.withdraw(install.model_name)
    except RegistryError as exc:
        if exc.status_code != 404:
            raise MarketplaceError(str(exc), exc.status_code) from None
    try:
        await kernel.models.expose_artifact(
            install.model_name,
            report_of(version),
            source="marketplace",
            version=version.version,
            description=f"marketplace: {slug} {version.version}",
        )
    except RegistryError as exc:
        raise MarketplaceError(str(exc), exc.status_code) from None
    install.version_id = version.id
    install.price_model = version.price_model
    install.unit_price = version.unit_price
    install.currency = version.currency
    install.pending_version_id = None
    install.upgrade_at = None
    await kernel.db.flush()
    now = datetime.now(UTC)
    was = previous.version if previous is not None else "?"
    await _notice(
        kernel,
        install,
        "upgraded",
        version,
        f"{install.model_name} moved from {slug} {was} to {version.version}",
        now,
    )
    await kernel.audit.record(
        "marketplace.install_upgraded",
        target=("install", install.id),
        details={"listing": slug, "from": was, "to": version.version},
    )


async def sync(kernel: Kernel, now: datetime | None = None) -> int:
    """Announce new versions to the tenant's following installs and move those whose time has
    come; the number moved."""
    settings = kernel.plugin_settings
    now = now or datetime.now(UTC)
    delay = timedelta(seconds=settings.follow_upgrade_delay_s)
    moved = 0
    installs = await kernel.db.scalars(
        select(Install).where(Install.mode == "follow").order_by(Install.id).with_for_update()
    )
    for install in list(installs):
        latest = await latest_version(kernel, install.listing_id, now)
        current = await kernel.db.get(ListingVersion, install.version_id)
        if (
            latest is None
            or latest.id == install.version_id
            or (current is not None and aware(latest.submitted_at) <= aware(current.submitted_at))
        ):
            install.pending_version_id = None  # nothing newer (a newer one was deprecated, say)
            install.upgrade_at = None
            continue
        if install.pending_version_id != latest.id or install.upgrade_at is None:
            install.pending_version_id = latest.id
            install.upgrade_at = now + delay
            price = (
                "free"
                if latest.price_model == "free"
                else f"{latest.unit_price} {latest.currency} minor units {latest.price_model}"
            )
            await _notice(
                kernel,
                install,
                "upgrade_pending",
                latest,
                f"{install.model_name} moves to version {latest.version} ({price}) at "
                f"{install.upgrade_at.isoformat()}, or when you accept it",
                install.upgrade_at,
            )
            if install.upgrade_at > now:  # the move runs then, not at the next periodic check
                await kernel.tasks.enqueue_at(install.upgrade_at + WAKE_SLACK, follow_latest)
        if aware(install.upgrade_at) <= now:
            await move(kernel, install, latest)
            moved += 1
    await kernel.db.flush()
    return moved


async def accept(kernel: Kernel, install_id: object) -> Install:
    """The tenant moves a following install to its announced version now."""
    install = await kernel.db.scalar(
        select(Install).where(Install.id == install_id).with_for_update()
    )
    if install is None:
        raise MarketplaceError(f"no install {install_id}", 404)
    if install.mode != "follow":
        raise MarketplaceError("the install is pinned: install again to follow", 409)
    was = install.version_id
    await sync(kernel)
    if install.version_id != was:  # its time had come: moved by the check itself
        return install
    if install.pending_version_id is None:
        raise MarketplaceError("no newer version is announced for this install", 409)
    version = await kernel.db.get(ListingVersion, install.pending_version_id)
    assert version is not None
    await move(kernel, install, version)
    return install


async def follow_latest(kernel: Kernel) -> None:
    """Per tenant, every ten minutes and at each announced move's time: :func:`sync`."""
    await sync(kernel)
