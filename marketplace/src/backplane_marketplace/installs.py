"""Installing a listing: the consumer tenant gets the approved version's artifact as a model
of its own registry under a name it chooses (``kernel.models.expose_artifact``, source
``marketplace``), after the publisher's signature over the artifact's SHA-256 is verified again
with a key that is not revoked; uninstalling withdraws the model. The kernel verifies the bytes
against that SHA-256 whenever it loads them, and no route hands them out."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from backplane import ArtifactReport, Kernel, ModelRef, ModelRefused, RegistryError
from backplane_marketplace import signing
from backplane_marketplace.deprecation import aware, deprecated_now, notice_for
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import Install, Listing, ListingVersion, SigningKey
from backplane_marketplace.pricing import pricing_out
from backplane_marketplace.schemas import InstallIn, InstallOut


async def approved_version(
    kernel: Kernel, listing_id: uuid.UUID, version: str | None
) -> ListingVersion:
    """The approved ``version`` (the latest approved one not deprecated when None); a version
    deprecated by now takes no new installs (409)."""
    query = select(ListingVersion).where(
        ListingVersion.listing_id == listing_id, ListingVersion.state == "approved"
    )
    if version is not None:
        query = query.where(ListingVersion.version == version)
    rows = list(
        await kernel.db.scalars(
            query.order_by(ListingVersion.submitted_at.desc(), ListingVersion.id.desc())
        )
    )
    if not rows:
        what = f"version {version!r}" if version else "version"
        raise MarketplaceError(f"listing {listing_id} has no approved {what}", 404)
    current = [r for r in rows if not deprecated_now(r)]
    if not current:
        if version is not None:
            since = aware(rows[0].deprecated_at).isoformat()  # type: ignore[arg-type]
            message = f"version {version!r} is deprecated since {since}: no new installs"
        else:
            message = f"listing {listing_id}: every approved version is deprecated"
        raise MarketplaceError(message, 409)
    return current[0]


async def verify_version(kernel: Kernel, row: ListingVersion) -> None:
    """The version's signature still verifies with a key that is not revoked (409 if not)."""
    key = await kernel.db.get(SigningKey, row.signing_key_id)
    if key is None or key.revoked_at is not None:
        raise MarketplaceError("the version was signed by a key its publisher revoked", 409)
    try:
        signing.verify(key.public_key, row.signature, signing.artifact_message(row.sha256))
    except signing.SignatureError as exc:
        raise MarketplaceError(f"the version's signature does not verify: {exc}", 409) from None


async def check_loading(kernel: Kernel, model: ModelRef) -> None:
    """Hook ``model_loading``: the tenant's install behind ``model`` exists, names this
    artifact, and its version's signature still verifies with a key that is not revoked
    (:class:`backplane.ModelRefused` with the reason otherwise)."""
    row = await kernel.db.scalar(
        select(ListingVersion)
        .join(Install, Install.version_id == ListingVersion.id)
        .where(Install.model_name == model.name)
    )
    if row is None or row.sha256 != model.key:
        raise ModelRefused("no install of a marketplace listing serves it any more")
    try:
        await verify_version(kernel, row)
    except MarketplaceError as exc:
        raise ModelRefused(str(exc)) from None


def report_of(row: ListingVersion) -> ArtifactReport:
    dynamic = bool(row.inputs) and all(t["shape"][:1] == [-1] for t in row.inputs)
    return ArtifactReport(
        sha256=row.sha256,
        size=row.size_bytes,
        inputs=row.inputs,
        outputs=row.outputs,
        dynamic_batch=dynamic,
    )


async def install(kernel: Kernel, data: InstallIn, user_id: uuid.UUID | None) -> InstallOut:
    db = kernel.db
    # Installs of one listing take turns (its row locked to the end of the transaction; its
    # install count changes anyway): a second install by the same tenant then sees the first.
    listing = await db.scalar(
        select(Listing).where(Listing.id == data.listing_id).with_for_update()
    )
    if listing is None:
        raise MarketplaceError(f"no listing {data.listing_id}", 404)
    if data.mode == "follow" and data.version is not None:
        raise MarketplaceError("a following install names no version: it takes the latest", 422)
    if await db.scalar(select(Install.id).where(Install.listing_id == listing.id)):
        raise MarketplaceError(f"listing {listing.slug!r} is installed already", 409)
    row = await approved_version(kernel, listing.id, data.version)
    await verify_version(kernel, row)
    try:
        await kernel.models.expose_artifact(
            data.name,
            report_of(row),
            source="marketplace",
            # The listing's version names the model's: with the artifact's SHA-256 it names
            # the tariff on the marketplace meters (see backplane_marketplace.charging).
            version=row.version,
            description=f"marketplace: {listing.slug} {row.version}",
        )
    except RegistryError as exc:
        raise MarketplaceError(str(exc), exc.status_code) from None
    made = Install(
        listing_id=listing.id,
        version_id=row.id,
        model_name=data.name,
        installed_by=user_id,
        price_model=row.price_model,
        unit_price=row.unit_price,
        currency=row.currency,
        mode=data.mode,
    )
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending before it starts,
        # and a unique violation there would end the whole transaction, not the savepoint.
        async with db.begin_nested():
            db.add(made)
            await db.flush()
    except IntegrityError:
        raise MarketplaceError(f"listing {listing.slug!r} is installed already", 409) from None
    await db.execute(
        update(Listing).where(Listing.id == listing.id).values(installs=Listing.installs + 1)
    )
    await db.refresh(made)
    return InstallOut(
        id=made.id,
        listing_id=listing.id,
        listing_slug=listing.slug,
        version=row.version,
        model_name=made.model_name,
        pricing=pricing_out(made),
        installed_at=made.installed_at,
        deprecated_at=row.deprecated_at and aware(row.deprecated_at),
        notice=notice_for(row),
        mode=made.mode,
    )


async def installs_out(kernel: Kernel, install_id: uuid.UUID | None = None) -> list[InstallOut]:
    pending = aliased(ListingVersion)
    query = (
        select(Install, Listing.slug, ListingVersion, pending.version)
        .join(Listing, Listing.id == Install.listing_id)
        .join(ListingVersion, ListingVersion.id == Install.version_id)
        .outerjoin(pending, pending.id == Install.pending_version_id)
        .order_by(Install.installed_at, Install.id)
    )
    if install_id is not None:
        query = query.where(Install.id == install_id)
    rows = await kernel.db.execute(query)
    return [
        InstallOut(
            id=i.id,
            listing_id=i.listing_id,
            listing_slug=slug,
            version=v.version,
            model_name=i.model_name,
            pricing=pricing_out(i),
            installed_at=i.installed_at,
            deprecated_at=v.deprecated_at and aware(v.deprecated_at),
            notice=notice_for(v),
            mode=i.mode,
            pending_version=next_version,
            upgrade_at=i.upgrade_at and aware(i.upgrade_at),
        )
        for i, slug, v, next_version in rows.tuples()
    ]


async def uninstall(kernel: Kernel, install_id: uuid.UUID) -> Install:
    db = kernel.db
    row = await db.scalar(select(Install).where(Install.id == install_id))
    if row is None:
        raise MarketplaceError(f"no install {install_id}", 404)
    try:
        await kernel.models.withdraw(row.model_name)
    except RegistryError as exc:
        if exc.status_code != 404:  # the tenant deleted the model itself: nothing to withdraw
            raise MarketplaceError(str(exc), exc.status_code) from None
    await db.delete(row)
    await db.flush()
    await db.execute(
        update(Listing)
        .where(Listing.id == row.listing_id, Listing.installs > 0)
        .values(installs=Listing.installs - 1)
    )
    return row
