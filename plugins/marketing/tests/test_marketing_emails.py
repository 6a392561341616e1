"""The fast path of address normalisation (plain local parts, domains checked once each) gives
exactly what email-validator gives for the whole address, valid or not."""

from __future__ import annotations

import pytest

from backplane_marketing.emails import InvalidEmailError, _full, normalise_email

CASES = [
    "Ada.L@Example.ORG",
    "a+b@x.co.uk",
    "x@@example.org",
    "a@b",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    "user@localhost",
    "u@exa_mple.com",
    "ü@example.org",
    "a@münchen.de",
    "A@MÜNCHEN.DE",
    '"quoted"@example.org',
    "a@example.org.",
    "a@-example.org",
    "a@example..org",
    "a@[127.0.0.1]",
    "a" * 65 + "@example.org",
    "a@" + "b" * 250 + ".com",
    "x@123.com",
    "o'brien@example.ie",
    "a@example.invalid",
]


def outcome(function: object, address: str) -> str:
    try:
        return function(address)  # type: ignore[operator, no-any-return]
    except InvalidEmailError:
        return "invalid"


@pytest.mark.parametrize("address", CASES)
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    assert outcome(normalise_email, address) == outcome(_full, address)
