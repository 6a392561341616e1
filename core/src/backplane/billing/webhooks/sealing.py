"""Endpoint secrets sealed at rest with a key derived from the installation's secret.

The same construction as the signing keyring (:mod:`backplane.identity.keystore`): HKDF-SHA256
of ``secret_key`` into a Fernet key, with its own salt so the two keys are independent. The
database holds only the sealed form; the plain secret is shown to the tenant once.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from backplane.secret_key import sealing_key


class SealError(RuntimeError):
    """A sealed secret cannot be opened (the installation's secret_key changed)."""


SEALING_PURPOSE = "backplane webhooks"
"""The salt of this kind's sealing key (:func:`backplane.secret_key.sealing_key`); changing it
would leave every sealed value unreadable."""


def _fernet(app_secret: str) -> Fernet:
    return sealing_key(app_secret, SEALING_PURPOSE)


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
