"""Listings and versions: creating a model card, submitting a version through the automatic
checks, reading them back as their publisher sees them, and operators' decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel
from backplane_marketplace import checks
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import Listing, ListingVersion, Publisher, SigningKey
from backplane_marketplace.pricing import checked_tariff, pricing_out
from backplane_marketplace.schemas import ListingIn, ListingOut, VersionIn, VersionOut
from backplane_marketplace.settings import MarketplaceSettings


def approved_only(publisher: Publisher) -> None:
    if publisher.state != "approved":
        raise MarketplaceError(
            f"the publisher is {publisher.state}: listings come once operators approve it", 409
        )


async def create_listing(db: AsyncSession, publisher: Publisher, data: ListingIn) -> Listing:
    approved_only(publisher)
    listing = Listing(publisher_id=publisher.id, **msgspec.structs.asdict(data))
    listing.created_at = datetime.now(UTC)
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending before it starts,
        # and a unique violation there would end the whole transaction, not the savepoint.
        async with db.begin_nested():
            db.add(listing)
            await db.flush()
    except IntegrityError:
        raise MarketplaceError(f"the listing slug {data.slug!r} is taken", 409) from None
    return listing


async def own_listing(db: AsyncSession, publisher: Publisher, listing_id: uuid.UUID) -> Listing:
    listing = await db.scalar(
        select(Listing).where(Listing.id == listing_id, Listing.publisher_id == publisher.id)
    )
    if listing is None:
        raise MarketplaceError(f"no listing {listing_id} of this publisher", 404)
    return listing


async def submit_version(
    kernel: Kernel,
    publisher: Publisher,
    listing: Listing,
    data: VersionIn,
    settings: MarketplaceSettings,
    user_id: uuid.UUID | None,
) -> ListingVersion:
    """Run the automatic checks (any failure: 4xx naming it, nothing kept) and record the
    version for the operators' review."""
    approved_only(publisher)
    db = kernel.db
    if len(data.examples) > settings.max_examples:
        raise MarketplaceError(
            f"at most {settings.max_examples} examples (setting max_examples)", 422
        )
    taken = await db.scalar(
        select(ListingVersion.id).where(
            ListingVersion.listing_id == listing.id, ListingVersion.version == data.version
        )
    )
    if taken is not None:
        raise MarketplaceError(f"version {data.version!r} exists; versions are immutable", 409)
    tariff = checked_tariff(data.pricing, settings)
    artifact = checks.decode_artifact(data.artifact)
    key = await checks.signing_key_for(db, publisher.id, artifact, data.signature)
    report = await checks.validate(kernel, artifact)
    twin = await db.scalar(
        select(ListingVersion.id).where(
            ListingVersion.sha256 == report.sha256, ListingVersion.version == data.version
        )
    )
    if twin is not None:  # (artifact, version) names the tariff its calls are billed at
        raise MarketplaceError(
            f"this artifact is published as version {data.version!r} of another listing", 409
        )
    measured = await checks.run_examples(
        kernel, report.sha256, data.examples, settings.latency_runs
    )
    row = ListingVersion(
        listing_id=listing.id,
        version=data.version,
        sha256=report.sha256,
        size_bytes=report.size,
        signature=data.signature,
        signing_key_id=key.id,
        inputs=report.inputs,
        outputs=report.outputs,
        examples=msgspec.to_builtins(data.examples),
        claimed_metrics=data.claimed_metrics,
        checks=measured
        | {
            "signature": "verified",
            "validation": "passed",
            # The kernel's upload trial: what the loaded session adds to a server's memory.
            "memory_bytes": report.resident_bytes,
        },
        changelog=data.changelog,
        price_model=tariff.model,
        unit_price=tariff.unit_price,
        currency=kernel.settings.billing.currency,
        state="in_review",
        review_reason="",
        submitted_by=user_id,
        submitted_at=datetime.now(UTC),
    )
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending before it starts,
        # and a unique violation there would end the whole transaction, not the savepoint.
        async with db.begin_nested():
            db.add(row)
            await db.flush()
    except IntegrityError:  # the same version submitted twice at once
        raise MarketplaceError(
            f"version {data.version!r} exists; versions are immutable", 409
        ) from None
    return row


async def versions_out(db: AsyncSession, rows: list[ListingVersion]) -> list[VersionOut]:
    ids = {r.signing_key_id for r in rows}
    prints = (
        dict(
            (
                await db.execute(
                    select(SigningKey.id, SigningKey.fingerprint).where(SigningKey.id.in_(ids))
                )
            )
            .tuples()
            .all()
        )
        if ids
        else {}
    )
    return [
        VersionOut(
            id=r.id,
            listing_id=r.listing_id,
            version=r.version,
            sha256=r.sha256,
            size_bytes=r.size_bytes,
            signing_key_fingerprint=prints.get(r.signing_key_id, ""),
            inputs=r.inputs,
            outputs=r.outputs,
            claimed_metrics=r.claimed_metrics,
            checks=r.checks,
            changelog=r.changelog,
            pricing=pricing_out(r),
            state=r.state,
            review_reason=r.review_reason,
            submitted_at=r.submitted_at,
            decided_at=r.decided_at,
            deprecated_at=r.deprecated_at,
            deprecation_note=r.deprecation_note,
        )
        for r in rows
    ]


async def listing_out(
    db: AsyncSession, listing: Listing, *, states: tuple[str, ...] | None = None
) -> ListingOut:
    query = select(ListingVersion).where(ListingVersion.listing_id == listing.id)
    if states is not None:
        query = query.where(ListingVersion.state.in_(states))
    rows = list(await db.scalars(query.order_by(ListingVersion.submitted_at, ListingVersion.id)))
    from backplane_marketplace.reviews import rating_summaries

    fields: dict[str, Any] = {
        name: getattr(listing, name)
        for name in ListingOut.__struct_fields__
        if name not in ("versions", "rating")
    }
    rating = (await rating_summaries(db, [listing.id]))[listing.id]
    return ListingOut(**fields, rating=rating, versions=await versions_out(db, rows))


DECISIONS = {"approve": "approved", "reject": "rejected", "request-changes": "changes_requested"}


async def decide_version(
    db: AsyncSession, version_id: uuid.UUID, decision: str, reason: str, by: uuid.UUID | None
) -> ListingVersion:
    """An operator's decision on a version in review; exactly one of concurrent ones wins."""
    state = DECISIONS[decision]
    if state != "approved" and not reason.strip():
        raise MarketplaceError("rejecting or requesting changes needs a reason", 422)
    changed = await db.execute(
        update(ListingVersion)
        .where(ListingVersion.id == version_id, ListingVersion.state == "in_review")
        .values(state=state, review_reason=reason, decided_by=by, decided_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    row = await db.get(ListingVersion, version_id, populate_existing=True)
    if row is None:
        raise MarketplaceError(f"no version {version_id}", 404)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise MarketplaceError(f"the version is {row.state} already", 409)
    return row
