"""Endpoint secrets sealed at rest with a key derived from the installation's secret.

The same construction as the signing keyring (:mod:`backplane.identity.keystore`): HKDF-SHA256
of ``secret_key`` into a Fernet key, with its own salt so the two keys are independent. The
database holds only the sealed form; the plain secret is shown to the tenant once.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SealError(RuntimeError):
    """A sealed secret cannot be opened (the installation's secret_key changed)."""


@functools.lru_cache(maxsize=8)
def _fernet(app_secret: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"backplane webhooks", info=b"fernet v1"
    ).derive(app_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, app_secret: str) -> str:
    return _fernet(app_secret).encrypt(secret.encode()).decode()


def unseal(sealed: str, app_secret: str) -> str:
    try:
        return _fernet(app_secret).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SealError(
            "a webhook secret cannot be decrypted with this secret_key; every process must "
            "share BACKPLANE_SECRET_KEY (rotate the endpoint's secret if it changed for good)"
        ) from None
