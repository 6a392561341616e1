"""The signing keyring, stored in the database encrypted with the installation's secret.

Every process (and every host) must verify tokens that any other process signed, so the keyring
lives in the shared database, not in a data directory. It is encrypted with a key derived from
``secret_key`` (HKDF-SHA256, then Fernet), so a database dump alone cannot mint tokens.
"""

from __future__ import annotations

import time

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane.db.models import KernelState
from backplane.identity.tokens import Keyring, decode_keyring, encode_keyring
from backplane.secret_key import sealing_key

KEYRING_STATE_KEY = "signing_keyring"


class KeyringError(RuntimeError):
    """The stored keyring cannot be decrypted (the secret changed) or read."""


SEALING_PURPOSE = "backplane keyring"
"""The salt of this kind's sealing key (:func:`backplane.secret_key.sealing_key`); changing it
would leave every sealed value unreadable."""


def _fernet(secret: str) -> Fernet:
    return sealing_key(secret, SEALING_PURPOSE)


def _seal(keyring: Keyring, secret: str) -> str:
    return _fernet(secret).encrypt(encode_keyring(keyring)).decode()


def _open(token: str, secret: str) -> Keyring:
    try:
        return decode_keyring(_fernet(secret).decrypt(token.encode()))
    except InvalidToken:
        raise KeyringError(
            "the stored signing keyring cannot be decrypted with this secret_key; "
            "every process must share BACKPLANE_SECRET_KEY (or the data directory's secret_key)"
        ) from None


async def load_or_create_keyring(
    sessionmaker: async_sessionmaker[AsyncSession], secret: str
) -> Keyring:
    """Read the keyring, creating it on first use (concurrent creators agree on one)."""
    async with sessionmaker() as session:
        row = await session.get(KernelState, KEYRING_STATE_KEY)
        if row is not None:
            return _open(row.value, secret)
        keyring = Keyring.generate(int(time.time()))
        session.add(KernelState(key=KEYRING_STATE_KEY, value=_seal(keyring, secret)))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            row = await session.get(KernelState, KEYRING_STATE_KEY)
            if row is None:  # pragma: no cover - the conflicting insert must be visible now
                raise
            return _open(row.value, secret)
        return keyring


async def rotate_keyring(
    sessionmaker: async_sessionmaker[AsyncSession], secret: str, access_ttl_s: int, leeway_s: int
) -> Keyring:
    """Add a new signing key; the previous one keeps verifying until its tokens expire."""
    async with sessionmaker() as session, session.begin():
        row = await session.get(KernelState, KEYRING_STATE_KEY, with_for_update=True)
        current = _open(row.value, secret) if row is not None else Keyring.generate()
        rotated = current.rotate(int(time.time()), access_ttl_s, leeway_s)
        if row is None:
            session.add(KernelState(key=KEYRING_STATE_KEY, value=_seal(rotated, secret)))
        else:
            row.value = _seal(rotated, secret)
    return rotated
