"""A version's tariff: free, per request or per row, in whole minor units of the deployment's
currency (``billing.currency``), within the platform's limit (setting ``max_unit_price``).

The tariff is fixed when the version is submitted (versions are immutable, so the operators
approve a price together with the artifact) and copied onto every install of it: what a
consumer accepted when installing is what it pays, whatever the publisher does later.
"""

from __future__ import annotations

from typing import Protocol

from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.schemas import PricingIn, PricingOut
from backplane_marketplace.settings import MarketplaceSettings


class Priced(Protocol):
    price_model: str
    unit_price: int
    currency: str


def checked_tariff(pricing: PricingIn, settings: MarketplaceSettings) -> PricingIn:
    """``pricing`` if the platform allows it, else 422 naming the problem."""
    if pricing.model == "free":
        if pricing.unit_price != 0:
            raise MarketplaceError("a free version has unit_price 0", 422)
        return pricing
    if pricing.unit_price < 1:
        raise MarketplaceError(f"a {pricing.model} price needs unit_price of at least 1", 422)
    if pricing.unit_price > settings.max_unit_price:
        raise MarketplaceError(
            f"unit_price {pricing.unit_price} is above the platform's limit of "
            f"{settings.max_unit_price} (setting max_unit_price)",
            422,
        )
    return pricing


def pricing_out(row: Priced) -> PricingOut:
    return PricingOut(model=row.price_model, unit_price=row.unit_price, currency=row.currency)


def charge_for(row: Priced, requests: int, rows: int) -> int:
    """Minor units owed for ``requests`` requests carrying ``rows`` rows in all: exact."""
    if row.price_model == "per_request":
        return requests * row.unit_price
    if row.price_model == "per_row":
        return rows * row.unit_price
    return 0
