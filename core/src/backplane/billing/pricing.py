"""Charge models and money arithmetic: exact decimals in, integer minor units out.

Every price is expressed in **minor units** of the plan's currency (cents for USD). Unit prices
and tier prices may carry sub-minor precision and are written as decimal strings (``"0.25"`` =
a quarter of a cent per unit), so no binary floating point ever touches money. Fees, flat fees
and package prices are whole minor units. A line's amount is computed exactly with
:class:`~decimal.Decimal` and **rounded half-up to a whole minor unit once, at line level**
(never per tier or per unit); an invoice total is the sum of its rounded lines.

Quantities come from meters (IEEE doubles in the usage tables): they are converted with their
shortest ``repr`` (``0.1`` stays ``0.1``), which is exact for whole numbers up to 2**53.

The four models:

- ``standard``: ``quantity * unit_price``.
- ``package``: ``ceil(quantity / package_size) * package_price`` (a started package is paid).
- ``graduated``: tiers with inclusive upper bounds ``up_to`` (the last one ``None``); each unit
  is priced at the rate of the tier it falls in, and every tier the quantity reaches adds its
  ``flat_fee`` once.
- ``volume``: all units at the rate of the one tier the total falls in, plus that tier's
  ``flat_fee``.

A quantity of zero costs nothing under every model (no tier is reached).
"""

from __future__ import annotations

import itertools
import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Literal

import msgspec

ChargeModel = Literal["standard", "package", "graduated", "volume"]
DecimalText = Annotated[str, msgspec.Meta(pattern=r"^\d{1,12}(\.\d{1,12})?$")]
"""A non-negative decimal written as a string, at most 12 digits either side of the point."""
Minor = Annotated[int, msgspec.Meta(ge=0, le=10**15)]


class PricingError(ValueError):
    """A charge definition is inconsistent (the message says which field and why)."""


class Tier(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    up_to: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Inclusive upper bound of the tier; ``None`` (or left out) for the last, open tier."""
    unit_price: DecimalText = "0"
    flat_fee: Minor = 0


class ChargeSpec(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True
):
    """How one meter is priced on a plan."""

    meter: str
    model: ChargeModel = "standard"
    unit_price: DecimalText | None = None
    """``standard``: price of one unit."""
    package_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    package_price: Minor | None = None
    """``package``: price of each started package of ``package_size`` units."""
    tiers: list[Tier] | None = None
    """``graduated`` and ``volume``: ascending tiers, the last without ``up_to``."""

    def check(self) -> None:
        """Raise :class:`PricingError` unless the fields fit the model."""
        needs: dict[str, tuple[str, ...]] = {
            "standard": ("unit_price",),
            "package": ("package_size", "package_price"),
            "graduated": ("tiers",),
            "volume": ("tiers",),
        }
        fields = ("unit_price", "package_size", "package_price", "tiers")
        for name in fields:
            given = getattr(self, name) is not None
            if given != (name in needs[self.model]):
                verb = "needs" if not given else "does not take"
                raise PricingError(f"charge on {self.meter}: model {self.model!r} {verb} {name!r}")
        if self.tiers is not None:
            _check_tiers(self.meter, self.tiers)


def _check_tiers(meter: str, tiers: list[Tier]) -> None:
    if not tiers:
        raise PricingError(f"charge on {meter}: at least one tier is needed")
    if tiers[-1].up_to is not None:
        raise PricingError(f"charge on {meter}: the last tier must have up_to = null")
    bounds = [t.up_to for t in tiers[:-1]]
    if any(b is None for b in bounds):
        raise PricingError(f"charge on {meter}: only the last tier may be open-ended")
    closed = [b for b in bounds if b is not None]
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(closed)):
        raise PricingError(f"charge on {meter}: tier bounds must increase")


class Priced(msgspec.Struct, frozen=True):
    """The exact amount (before rounding) and how it was reached, for the invoice line."""

    exact: Decimal
    breakdown: list[dict[str, str]]

    @property
    def amount(self) -> int:
        return round_minor(self.exact)


def round_minor(value: Decimal) -> int:
    """Half-up to a whole minor unit (the one rounding step, at line level)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quantity_decimal(quantity: float | int | Decimal) -> Decimal:
    if isinstance(quantity, Decimal):
        return quantity
    try:
        return Decimal(repr(quantity)) if isinstance(quantity, float) else Decimal(quantity)
    except InvalidOperation:
        raise PricingError(f"not a finite quantity: {quantity!r}") from None


def price(charge: ChargeSpec, quantity: float | int | Decimal) -> Priced:
    """The amount ``charge`` asks for ``quantity`` units."""
    q = quantity_decimal(quantity)
    if q <= 0:
        return Priced(Decimal(0), [])
    if charge.model == "standard":
        unit = Decimal(charge.unit_price or "0")
        return Priced(q * unit, [{"units": str(q), "unit_price": str(unit)}])
    if charge.model == "package":
        size, each = charge.package_size or 1, charge.package_price or 0
        packages = math.ceil(q / size)
        return Priced(
            Decimal(packages * each),
            [{"packages": str(packages), "package_size": str(size), "package_price": str(each)}],
        )
    tiers = charge.tiers or []
    if charge.model == "graduated":
        return _graduated(tiers, q)
    return _volume(tiers, q)


def _graduated(tiers: list[Tier], q: Decimal) -> Priced:
    total, lower, parts = Decimal(0), Decimal(0), []
    for tier in tiers:
        if q <= lower:
            break
        upper = q if tier.up_to is None else min(q, quantity_decimal(tier.up_to))
        units = upper - lower
        unit = Decimal(tier.unit_price)
        total += units * unit + tier.flat_fee
        parts.append({"units": str(units), "unit_price": str(unit), "flat_fee": str(tier.flat_fee)})
        lower = upper
    return Priced(total, parts)


def _volume(tiers: list[Tier], q: Decimal) -> Priced:
    tier = next(t for t in tiers if t.up_to is None or q <= quantity_decimal(t.up_to))
    unit = Decimal(tier.unit_price)
    return Priced(
        q * unit + tier.flat_fee,
        [{"units": str(q), "unit_price": str(unit), "flat_fee": str(tier.flat_fee)}],
    )


def prorate(fee: int, part_seconds: float, whole_seconds: float) -> Priced:
    """A fixed fee for the share of the period a segment covers: ``fee x part / whole`` with
    one division (microsecond resolution), rounded at line level."""
    whole = round(whole_seconds * 1_000_000)
    if whole <= 0 or fee == 0:
        return Priced(Decimal(0), [])
    part = round(part_seconds * 1_000_000)
    share = Decimal(part) / Decimal(whole)
    return Priced(
        Decimal(fee * part) / Decimal(whole), [{"fee": str(fee), "share": f"{share:.6f}"}]
    )
