"""Ratings and written reviews: a tenant that has a listing installed rates it (1..5) with an
optional title and text, one review per tenant and listing, which it may change or delete
(changing or deleting needs no install any more: what it wrote stays its own); every tenant
that may read the catalog reads the reviews of an approved listing, without their authors;
the listing's publisher may answer each one. The listing shows the average and the count.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import Kernel
from backplane_marketplace.community_models import Review
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import Install, Listing, ListingVersion, Publisher
from backplane_marketplace.schemas import RatingOut, ReviewIn, ReviewOut


def rating_table() -> Any:
    """A subquery of ``(listing_id, average, count)`` over every rated listing, for joining
    into catalog queries (the ``rating`` sort)."""
    return (
        select(
            Review.listing_id.label("listing_id"),
            func.avg(Review.rating).label("average"),
            func.count(Review.id).label("count"),
        )
        .group_by(Review.listing_id)
        .subquery("ratings")
    )


async def rating_summaries(
    db: AsyncSession, listing_ids: list[uuid.UUID]
) -> dict[uuid.UUID, RatingOut]:
    found = await db.execute(
        select(Review.listing_id, func.avg(Review.rating), func.count(Review.id))
        .where(Review.listing_id.in_(listing_ids))
        .group_by(Review.listing_id)
    )
    out = {i: RatingOut(average=None, count=0) for i in listing_ids}
    for listing_id, average, count in found.tuples():
        out[listing_id] = RatingOut(average=round(float(average), 2), count=int(count))
    return out


async def visible_listing(db: AsyncSession, listing_id: uuid.UUID) -> Listing:
    """A listing of the catalog (with an approved version), else 404."""
    approved = select(ListingVersion.id).where(
        ListingVersion.listing_id == listing_id, ListingVersion.state == "approved"
    )
    listing = await db.get(Listing, listing_id)
    if listing is None or await db.scalar(approved.limit(1)) is None:
        raise MarketplaceError(f"no listing {listing_id} in the catalog", 404)
    return listing


def review_out(row: Review, tenant_id: uuid.UUID | None) -> ReviewOut:
    return ReviewOut(
        id=row.id,
        listing_id=row.listing_id,
        rating=row.rating,
        title=row.title,
        body=row.body,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reply=row.reply,
        replied_at=row.replied_at,
        mine=row.rater_tenant_id == tenant_id,
    )


async def write_review(
    kernel: Kernel, listing_id: uuid.UUID, data: ReviewIn, user_id: uuid.UUID | None
) -> tuple[ReviewOut, bool]:
    """The tenant's review of the listing, made or changed; whether it was made now."""
    db = kernel.db
    tenant_id = kernel.tenant_id
    assert tenant_id is not None
    await visible_listing(db, listing_id)
    mine = (Review.listing_id == listing_id, Review.rater_tenant_id == tenant_id)
    now = datetime.now(UTC)
    values = {"rating": data.rating, "title": data.title, "body": data.body, "updated_at": now}
    changed = await db.execute(
        update(Review).where(*mine).values(**values).execution_options(synchronize_session=False)
    )
    made = False
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        # Only tenants that installed the listing write a review (the install is the tenant's
        # own row: its session sees no other tenant's).
        if await db.scalar(select(Install.id).where(Install.listing_id == listing_id)) is None:
            raise MarketplaceError("only a tenant that installed the listing may review it", 403)
        row = Review(
            listing_id=listing_id,
            rater_tenant_id=tenant_id,
            written_by=user_id,
            created_at=now,
            reply="",
            **values,
        )
        try:
            async with db.begin_nested():
                db.add(row)
                await db.flush()
            made = True
        except IntegrityError:  # written at the same moment by another request: change it
            await db.execute(
                update(Review)
                .where(*mine)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    found = await db.scalar(select(Review).where(*mine).execution_options(populate_existing=True))
    assert found is not None
    return review_out(found, tenant_id), made


async def delete_review(kernel: Kernel, listing_id: uuid.UUID) -> uuid.UUID:
    tenant_id = kernel.tenant_id
    found = await kernel.db.scalar(
        select(Review.id).where(
            Review.listing_id == listing_id, Review.rater_tenant_id == tenant_id
        )
    )
    if found is None:
        raise MarketplaceError(f"the tenant has no review of listing {listing_id}", 404)
    await kernel.db.execute(delete(Review).where(Review.id == found))
    return found


async def reviews_of(
    kernel: Kernel, listing_id: uuid.UUID, limit: int, offset: int
) -> list[ReviewOut]:
    await visible_listing(kernel.db, listing_id)
    rows = await kernel.db.scalars(
        select(Review)
        .where(Review.listing_id == listing_id)
        .order_by(Review.updated_at.desc(), Review.id)
        .limit(limit)
        .offset(offset)
    )
    return [review_out(r, kernel.tenant_id) for r in rows]


async def reply_to(
    kernel: Kernel, publisher: Publisher, listing_id: uuid.UUID, review_id: uuid.UUID, text: str
) -> ReviewOut:
    """The publisher's answer to a review of its own listing (404 for anybody else's)."""
    db = kernel.db
    row = await db.scalar(
        select(Review)
        .join(Listing, Listing.id == Review.listing_id)
        .where(
            Review.id == review_id,
            Review.listing_id == listing_id,
            Listing.publisher_id == publisher.id,
        )
    )
    if row is None:
        raise MarketplaceError(f"no review {review_id} of this publisher's listing", 404)
    row.reply = text
    row.replied_at = datetime.now(UTC) if text else None
    await db.flush()
    return review_out(row, kernel.tenant_id)
