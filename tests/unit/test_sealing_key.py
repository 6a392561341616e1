"""Sealing keys: one per kind of secret, derived from the installation's secret, unchanged by
the move to one helper (values sealed before still open)."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backplane.billing.webhooks import sealing
from backplane.identity import keystore
from backplane.mail import dkim
from backplane.secret_key import sealing_key

SECRET = "an installation secret of enough length"


def _as_before(salt: bytes) -> Fernet:
    """The construction each module wrote out for itself before ``sealing_key`` existed."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"fernet v1").derive(
        SECRET.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def test_values_sealed_before_still_open() -> None:
    for purpose in (keystore.SEALING_PURPOSE, sealing.SEALING_PURPOSE, dkim.SEALING_PURPOSE):
        sealed = _as_before(purpose.encode()).encrypt(b"kept at rest")
        assert sealing_key(SECRET, purpose).decrypt(sealed) == b"kept at rest"


def test_each_kind_of_secret_has_its_own_key() -> None:
    purposes = {keystore.SEALING_PURPOSE, sealing.SEALING_PURPOSE, dkim.SEALING_PURPOSE}
    assert len(purposes) == 3
    sealed = sealing_key(SECRET, keystore.SEALING_PURPOSE).encrypt(b"x")
    for other in purposes - {keystore.SEALING_PURPOSE}:
        with pytest.raises(InvalidToken):
            sealing_key(SECRET, other).decrypt(sealed)
