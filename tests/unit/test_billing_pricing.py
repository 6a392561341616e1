"""Charge models with hand-computed amounts (minor units; one half-up rounding per line)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from backplane.billing.pricing import ChargeSpec, PricingError, Tier, price, prorate, round_minor


def charge(**fields: object) -> ChargeSpec:
    spec = msgspec.convert({"meter": "test.m", **fields}, ChargeSpec)
    spec.check()
    return spec


def test_standard_prices_each_unit_and_rounds_once_at_line_level() -> None:
    spec = charge(model="standard", unit_price="0.333")
    # 10 x 0.333 = 3.33 -> 3; per-unit rounding would give 0 (10 x round(0.333)).
    assert price(spec, 10).amount == 3
    assert price(spec, 15).exact == Decimal("4.995")
    assert price(spec, 15).amount == 5  # 4.995 half-up
    assert price(spec, 0).amount == 0


def test_fractional_quantities_are_read_exactly() -> None:
    spec = charge(model="standard", unit_price="10")
    # The float 0.1 + 0.2 is what it is (its shortest repr), and still one minor unit of 3.
    assert price(spec, 0.1 + 0.2).exact == Decimal("3.00000000000000040")
    assert price(spec, 0.1 + 0.2).amount == 3
    assert price(spec, 0.3).exact == Decimal("3.0")


def test_package_charges_every_started_package() -> None:
    spec = charge(model="package", package_size=1000, package_price=200)
    assert price(spec, 1).amount == 200
    assert price(spec, 1000).amount == 200
    assert price(spec, 1001).amount == 400
    assert price(spec, 1550).amount == 400
    assert price(spec, 0).amount == 0


TIERS = [
    {"up_to": 10, "unit_price": "100"},
    {"up_to": 20, "unit_price": "50", "flat_fee": 500},
    {"up_to": None, "unit_price": "10"},
]


def test_graduated_prices_each_unit_in_its_own_tier_with_flat_fees_of_reached_tiers() -> None:
    spec = charge(model="graduated", tiers=TIERS)
    assert price(spec, 5).amount == 500  # 5 x 100
    assert price(spec, 10).amount == 1000  # tier 2 not reached: no flat fee
    assert price(spec, 17).amount == 1000 + 350 + 500
    assert price(spec, 25).amount == 1000 + 500 + 500 + 50  # 10x100 + 10x50 + 500 + 5x10
    assert price(spec, 10.5).amount == 1000 + 25 + 500  # fractional units enter tier 2


def test_volume_prices_all_units_at_the_tier_the_total_falls_in() -> None:
    spec = charge(model="volume", tiers=TIERS)
    assert price(spec, 10).amount == 1000
    assert price(spec, 17).amount == 17 * 50 + 500
    assert price(spec, 25).amount == 250
    assert price(spec, 0).amount == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "standard"}, "needs 'unit_price'"),
        ({"model": "standard", "unit_price": "1", "package_size": 5}, "does not take"),
        ({"model": "package", "package_size": 5}, "needs 'package_price'"),
        ({"model": "graduated", "tiers": []}, "at least one tier"),
        ({"model": "volume", "tiers": [{"up_to": 5}]}, "last tier must have up_to = null"),
        (
            {"model": "volume", "tiers": [{"up_to": 5}, {"up_to": 3}, {"up_to": None}]},
            "must increase",
        ),
        ({"model": "volume", "tiers": [{"up_to": None}, {"up_to": None}]}, "only the last"),
    ],
)
def test_inconsistent_charges_are_refused(fields: dict[str, object], message: str) -> None:
    spec = msgspec.convert({"meter": "test.m", **fields}, ChargeSpec)
    with pytest.raises(PricingError, match=message):
        spec.check()


def test_prices_are_decimal_strings_never_floats() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"meter": "m.x", "unit_price": 0.1}, ChargeSpec)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"up_to": None, "unit_price": "-1"}, Tier)


def test_prorated_fee_is_one_exact_division_rounded_half_up() -> None:
    september = 30 * 86_400
    first = 15 * 86_400 + 12 * 3600 + 30 * 60  # 1 Sep 00:00 .. 16 Sep 12:30
    assert prorate(3000, first, september).exact == Decimal(3000 * first) / september
    assert prorate(3000, first, september).amount == 1552  # 1552.083...
    assert prorate(9000, september - first, september).amount == 4344  # 4343.75
    assert prorate(2900, september, september).amount == 2900
    assert round_minor(Decimal("2.5")) == 3
    assert round_minor(Decimal("2.4999")) == 2
