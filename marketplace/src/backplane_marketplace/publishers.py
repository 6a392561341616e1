"""Publisher services: applications, decisions and signing keys, shared by the publisher's
own routes and the platform operators' review routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketplace import signing
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import Publisher, SigningKey
from backplane_marketplace.schemas import KeyIn, KeyOut, PublisherOut


async def publisher_of(db: AsyncSession, tenant_id: uuid.UUID, *, lock: bool = False) -> Publisher:
    """The tenant's publisher, else 404."""
    query = select(Publisher).where(Publisher.publisher_tenant_id == tenant_id)
    found = await db.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise MarketplaceError("this tenant has not applied to publish", 404)
    return found


async def publisher_out(db: AsyncSession, publisher: Publisher) -> PublisherOut:
    keys = await db.scalars(
        select(SigningKey)
        .where(SigningKey.publisher_id == publisher.id)
        .order_by(SigningKey.created_at, SigningKey.id)
    )
    return PublisherOut(
        id=publisher.id,
        publisher_tenant_id=publisher.publisher_tenant_id,
        display_name=publisher.display_name,
        website=publisher.website,
        description=publisher.description,
        state=publisher.state,
        applied_at=publisher.applied_at,
        decided_at=publisher.decided_at,
        decision_reason=publisher.decision_reason,
        keys=[key_out(k) for k in keys],
    )


def key_out(key: SigningKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        public_key=key.public_key,
        fingerprint=key.fingerprint,
        created_at=key.created_at,
        retired_at=key.retired_at,
        revoked_at=key.revoked_at,
    )


async def add_key(
    db: AsyncSession, publisher: Publisher, data: KeyIn, user_id: uuid.UUID | None, limit: int
) -> SigningKey:
    """Register ``data``'s public key after checking its proof of possession; 409 past
    ``limit`` active keys, for a publisher not approved, or for a key known already."""
    if publisher.state != "approved":
        raise MarketplaceError(
            f"the publisher is {publisher.state}: keys are registered once operators approve it",
            409,
        )
    try:
        fingerprint = signing.fingerprint(data.public_key)
        signing.verify(
            data.public_key, data.proof, signing.key_proof_message(publisher.id, data.public_key)
        )
    except signing.SignatureError as exc:
        raise MarketplaceError(f"key refused: {exc}", 422) from None
    if await db.scalar(select(SigningKey.id).where(SigningKey.public_key == data.public_key)):
        raise MarketplaceError("this public key is registered already", 409)
    active = await db.scalar(
        select(func.count())
        .select_from(SigningKey)
        .where(
            SigningKey.publisher_id == publisher.id,
            SigningKey.revoked_at.is_(None),
            SigningKey.retired_at.is_(None),
        )
    )
    if int(active or 0) >= limit:
        raise MarketplaceError(
            f"a publisher may have at most {limit} active keys (setting max_active_keys): "
            "rotate or revoke one",
            409,
        )
    key = SigningKey(
        publisher_id=publisher.id,
        public_key=data.public_key,
        fingerprint=fingerprint,
        created_by=user_id,
        created_at=datetime.now(UTC),
    )
    db.add(key)
    await db.flush()
    return key


async def own_key(db: AsyncSession, publisher: Publisher, key_id: uuid.UUID) -> SigningKey:
    key = await db.scalar(
        select(SigningKey).where(SigningKey.id == key_id, SigningKey.publisher_id == publisher.id)
    )
    if key is None:
        raise MarketplaceError(f"no signing key {key_id} of this publisher", 404)
    return key


async def decide(
    db: AsyncSession, publisher_id: uuid.UUID, state: str, reason: str, by: uuid.UUID | None
) -> Publisher:
    """An operator's decision on a pending application: one conditional UPDATE, so of two
    operators deciding at once exactly one wins and the other gets 409."""
    if state == "rejected" and not reason.strip():
        raise MarketplaceError("a rejection needs a reason the publisher can act on", 422)
    changed = await db.execute(
        update(Publisher)
        .where(Publisher.id == publisher_id, Publisher.state == "pending")
        .values(state=state, decision_reason=reason, decided_by=by, decided_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    publisher = await db.get(Publisher, publisher_id, populate_existing=True)
    if publisher is None:
        raise MarketplaceError(f"no publisher {publisher_id}", 404)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise MarketplaceError(f"the application is {publisher.state} already", 409)
    return publisher
