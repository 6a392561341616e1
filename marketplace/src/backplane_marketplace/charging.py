"""Charging consumers for installed marketplace models, through the kernel's billing.

Every V2 call (or ``kernel.models.infer``) of a model the marketplace exposed counts on the
source meters ``marketplace.requests`` and ``marketplace.rows`` (the kernel records them with
its own inference meters, in the same batch, grouped by the artifact's SHA-256 and the
version: see :func:`backplane.inference.runtime.usage_items`). When the consumer's invoice
closes (hook ``invoice_closing``), each listing version used in the period becomes one invoice
line priced by its tariff (exact integers: requests or rows times the unit price), and a
:class:`~backplane_marketplace.money_models.Charge` row records the same figures in the same
transaction, for the publishers' statements.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from backplane import InvoiceItem, Kernel, Meter
from backplane_marketplace.models import Listing, ListingVersion
from backplane_marketplace.money_models import Charge
from backplane_marketplace.pricing import charge_for
from backplane_marketplace.trials import TrialAllowance

log = logging.getLogger(__name__)

REQUESTS, ROWS = "marketplace.requests", "marketplace.rows"
GROUPS = ("artifact", "version")

METERS = (
    Meter(
        code=REQUESTS,
        unit="{request}",
        group_by=GROUPS,
        description="V2 requests to installed marketplace models (by artifact and version)",
    ),
    Meter(
        code=ROWS,
        unit="{row}",
        aggregation="sum",
        group_by=GROUPS,
        description="Rows (batch entries) sent to installed marketplace models",
    ),
)


async def used_versions(
    kernel: Kernel, start: datetime, end: datetime
) -> dict[tuple[str, str], list[int]]:
    """``(sha256, version) -> [requests, rows]`` of the tenant's calls in ``[start, end)``."""
    used: dict[tuple[str, str], list[int]] = {}
    for index, code in enumerate((REQUESTS, ROWS)):
        for group in await kernel.usage.window(code, start, end):
            key = (str(group.group.get("artifact")), str(group.group.get("version")))
            used.setdefault(key, [0, 0])[index] += round(group.value)
    return used


async def invoice_items(
    kernel: Kernel, start: datetime, end: datetime, currency: str
) -> list[InvoiceItem]:
    """The consumer's marketplace lines for the period, and its charge rows (replaced)."""
    db = kernel.db
    used = await used_versions(kernel, start, end)
    await db.execute(delete(Charge).where(Charge.period_start == start))
    if not used:
        return []
    found = await db.execute(
        select(ListingVersion, Listing.slug, Listing.publisher_id)
        .join(Listing, Listing.id == ListingVersion.listing_id)
        .where(ListingVersion.sha256.in_(sorted({sha for sha, _ in used})))
    )
    versions = {(v.sha256, v.version): (v, slug, pub) for v, slug, pub in found.tuples()}
    trial = await TrialAllowance.before(db, {v.listing_id for v, _, _ in versions.values()}, start)
    items = []
    for key in sorted(used):
        requests, rows = used[key]
        if key not in versions:
            log.warning("marketplace usage of an unknown version %s %s: not billed", *key)
            continue
        version, slug, publisher_id = versions[key]
        covered = trial.spend(version, requests, rows)
        amount = charge_for(version, requests, rows) - covered * version.unit_price
        if version.currency != currency:
            log.warning(
                "listing %s %s is priced in %s, the invoice is in %s: not billed",
                slug,
                version.version,
                version.currency,
                currency,
            )
            amount = 0
        db.add(
            Charge(
                tenant_id=kernel.tenant_id,
                period_start=start,
                publisher_id=publisher_id,
                listing_id=version.listing_id,
                version_id=version.id,
                requests=requests,
                rows=rows,
                price_model=version.price_model,
                unit_price=version.unit_price,
                amount=amount,
                currency=version.currency,
                trial_units=covered,
            )
        )
        if version.currency == currency and (amount or covered):
            items.append(_item(slug, version, requests, rows, amount, covered))
    await db.flush()
    return items


def _item(
    slug: str, version: ListingVersion, requests: int, rows: int, amount: int, covered: int
) -> Any:
    """The invoice line: ``quantity`` is what is billed (``quantity x unit_price ==
    amount``); units the trial covered are named in the description and details."""
    per_row = version.price_model == "per_row"
    used, unit = (rows, "rows") if per_row else (requests, "requests")
    description = f"marketplace: {slug} {version.version}, {used} {unit}"
    if covered:
        description += f" ({covered} free in the trial)"
    return InvoiceItem(
        description=description,
        amount=amount,
        quantity=str(used - covered),
        meter=ROWS if per_row else REQUESTS,
        details=[
            {
                "listing_version_id": str(version.id),
                "price_model": version.price_model,
                "unit_price": str(version.unit_price),
                "requests": str(requests),
                "rows": str(rows),
                "trial_units": str(covered),
            }
        ],
    )
