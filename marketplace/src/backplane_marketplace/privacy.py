"""The plugin's tables under the data-rights hooks. The tenant's export holds its publisher
profile and signing keys (public halves only: the private ones never reach the deployment); a
person's export, the rows they applied or registered. Erasing a person forgets them as the
applicant, decider or key registrant (the columns are set to null): the publisher and its keys
belong to the tenant and stay. Reviews the tenant wrote are in its export (a person's: those
they wrote); erasing the person forgets them as the writer, the tenant's review stays."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update

from backplane_marketplace.community_models import Notice, Review
from backplane_marketplace.federation_models import FederatedInstall
from backplane_marketplace.models import Install, Listing, ListingVersion, Publisher, SigningKey
from backplane_marketplace.money_models import Charge, PayoutEntry, Statement


async def export(kernel: Any, archive: Any, subject: Any) -> None:
    mine = Publisher.publisher_tenant_id == kernel.tenant_id
    ids = select(Publisher.id).where(mine)
    if subject is None:
        await archive.add_table(Install)
        await archive.add_table(FederatedInstall)
        await archive.add_table(Publisher, mine)
        await archive.add_table(SigningKey, SigningKey.publisher_id.in_(ids))
        listings = select(Listing.id).where(Listing.publisher_id.in_(ids))
        await archive.add_table(Listing, Listing.publisher_id.in_(ids))
        await archive.add_table(ListingVersion, ListingVersion.listing_id.in_(listings))
        await archive.add_table(Charge)
        await archive.add_table(Statement, Statement.publisher_id.in_(ids))
        await archive.add_table(PayoutEntry, PayoutEntry.publisher_id.in_(ids))
        await archive.add_table(Review, Review.rater_tenant_id == kernel.tenant_id)
        await archive.add_table(Notice)
        return
    if subject.user_id is None:
        return
    who = subject.user_id
    await archive.add_table(Install, Install.installed_by == who)
    await archive.add_table(FederatedInstall, FederatedInstall.installed_by == who)
    await archive.add_table(
        Publisher, mine, or_(Publisher.applied_by == who, Publisher.decided_by == who)
    )
    await archive.add_table(
        SigningKey, SigningKey.publisher_id.in_(ids), SigningKey.created_by == who
    )
    listings = select(Listing.id).where(Listing.publisher_id.in_(ids))
    await archive.add_table(
        ListingVersion,
        ListingVersion.listing_id.in_(listings),
        or_(ListingVersion.submitted_by == who, ListingVersion.decided_by == who),
    )
    await archive.add_table(
        Review, Review.rater_tenant_id == kernel.tenant_id, Review.written_by == who
    )


async def erase(kernel: Any, subject: Any) -> dict[str, int]:
    if subject.user_id is None:
        return {}
    db = kernel.db
    who = subject.user_id
    mine = Publisher.publisher_tenant_id == kernel.tenant_id
    ids = select(Publisher.id).where(mine).scalar_subquery()
    changed = 0
    for column in (Publisher.applied_by, Publisher.decided_by):
        result = await db.execute(
            update(Publisher).where(mine, column == who).values({column.key: None})
        )
        changed += result.rowcount
    keys = await db.execute(
        update(SigningKey)
        .where(SigningKey.publisher_id.in_(ids), SigningKey.created_by == who)
        .values(created_by=None)
    )
    listings = select(Listing.id).where(Listing.publisher_id.in_(ids)).scalar_subquery()
    versions = 0
    for column in (ListingVersion.submitted_by, ListingVersion.decided_by):
        result = await db.execute(
            update(ListingVersion)
            .where(ListingVersion.listing_id.in_(listings), column == who)
            .values({column.key: None})
        )
        versions += result.rowcount
    installs = await db.execute(
        update(Install).where(Install.installed_by == who).values(installed_by=None)
    )
    reviews = await db.execute(
        update(Review)
        .where(Review.rater_tenant_id == kernel.tenant_id, Review.written_by == who)
        .values(written_by=None)
    )
    federated = await db.execute(
        update(FederatedInstall)
        .where(FederatedInstall.installed_by == who)
        .values(installed_by=None)
    )
    return {
        "marketplace_federated_installs": federated.rowcount,
        "marketplace_installs": installs.rowcount,
        "marketplace_reviews": reviews.rowcount,
        "marketplace_publishers": changed,
        "marketplace_signing_keys": keys.rowcount,
        "marketplace_versions": versions,
    }
