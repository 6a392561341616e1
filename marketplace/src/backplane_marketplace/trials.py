"""Trial allowances: a listing's first ``trial_units`` requests or rows (each version's billing
unit: requests for ``per_request``, rows for ``per_row``) per consumer tenant are free.

The allowance is applied where the charges are made, when the consumer's invoice closes
(``backplane_marketplace.charging``): the calls themselves are metered exactly by the kernel
whatever their concurrency, and one closing per tenant and period writes its charge rows, so
what the trial covers is exact too. Each :class:`~backplane_marketplace.money_models.Charge`
row records the units its trial covered (``trial_units``); what earlier periods used is the sum
of those rows, and within a period the allowance goes to the listing's versions in a fixed
order (the artifact's SHA-256, then the version). Free versions use none of it. Uninstalling
and installing again does not renew it: the tenant's charge rows remember.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane_marketplace.models import Listing, ListingVersion
from backplane_marketplace.money_models import Charge


class TrialAllowance:
    """What is left of each listing's trial for the closing tenant, spent as versions are
    priced in order."""

    def __init__(self, left: dict[uuid.UUID, int]) -> None:
        self.left = left

    @classmethod
    async def before(
        cls, db: AsyncSession, listing_ids: set[uuid.UUID], start: datetime
    ) -> TrialAllowance:
        """The allowance left at the start of the period beginning ``start`` (``db`` is the
        closing tenant's session: its own charge rows only)."""
        if not listing_ids:
            return cls({})
        sizes = dict(
            (
                await db.execute(
                    select(Listing.id, Listing.trial_units).where(Listing.id.in_(listing_ids))
                )
            )
            .tuples()
            .all()
        )
        used = dict(
            (
                await db.execute(
                    select(Charge.listing_id, func.coalesce(func.sum(Charge.trial_units), 0))
                    .where(Charge.listing_id.in_(listing_ids), Charge.period_start < start)
                    .group_by(Charge.listing_id)
                )
            )
            .tuples()
            .all()
        )
        return cls({i: max(0, int(sizes.get(i, 0)) - int(used.get(i, 0))) for i in listing_ids})

    def spend(self, version: ListingVersion, requests: int, rows: int) -> int:
        """The units of this use the trial covers (taken from what is left)."""
        if version.price_model == "per_request":
            units = requests
        elif version.price_model == "per_row":
            units = rows
        else:
            return 0
        covered = min(units, self.left.get(version.listing_id, 0))
        self.left[version.listing_id] = self.left.get(version.listing_id, 0) - covered
        return covered
