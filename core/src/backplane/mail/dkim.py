"""DKIM keys of sending domains: generated once per domain, the private key sealed at rest, the
DNS record to publish, and signing with dkimpy.

The sealing is the signing keyring's construction (:mod:`backplane.identity.keystore`):
HKDF-SHA256 of the installation's ``secret_key`` into a Fernet key, with a salt of its own, so
a database dump alone cannot sign mail as the domain.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.mail.models import DkimKey
from backplane.secret_key import sealing_key

KEY_BITS = 2048
"""RFC 8301: at least 1024; 2048 is what receivers expect now and still fits one TXT record."""
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
)
"""Signed when present; RFC 8058 requires the signature to cover both List-Unsubscribe headers."""
DOMAIN_PATTERN = re.compile(
    r"^(?=.{1,253}\Z)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z"
)


class DkimError(RuntimeError):
    """A sealed DKIM key cannot be opened (the installation's secret_key changed)."""


SEALING_PURPOSE = "backplane mail dkim"
"""The salt of this kind's sealing key (:func:`backplane.secret_key.sealing_key`); changing it
would leave every sealed value unreadable."""


def _fernet(app_secret: str) -> Fernet:
    return sealing_key(app_secret, SEALING_PURPOSE)


def check_domain(domain: str) -> str:
    """``domain`` lower-cased if it is a DNS name a DKIM key can be published under."""
    domain = domain.strip().lower().rstrip(".")
    if not DOMAIN_PATTERN.match(domain):
        raise ValueError(f"{domain!r} is not a domain name")
    return domain


def dns_record(key: DkimKey) -> tuple[str, str]:
    """The TXT record to publish: its name (``selector._domainkey.domain``) and its value."""
    return f"{key.selector}._domainkey.{key.domain}", f"v=DKIM1; k=rsa; p={key.public_key}"


async def get_or_create_key(
    session: AsyncSession, domain: str, selector: str, app_secret: str
) -> tuple[DkimKey, bool]:
    """The domain's key, generated on first use (``True`` then); concurrent creators agree on
    one (the primary key). ``session`` is committed."""
    found = await session.get(DkimKey, domain)
    if found is not None:
        return found, False
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = DkimKey(
        domain=domain,
        selector=selector,
        private_key_sealed=_fernet(app_secret).encrypt(pem).decode(),
        public_key=base64.b64encode(public).decode(),
        created_at=datetime.now(UTC),
    )
    session.add(key)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        again = await session.get(DkimKey, domain)
        if again is None:  # pragma: no cover - the conflicting insert is visible now
            raise
        return again, False
    return key, True


def sign(data: bytes, key: DkimKey, app_secret: str) -> bytes:
    """``data`` with a ``DKIM-Signature`` header prepended (relaxed/relaxed, rsa-sha256)."""
    import dkim  # dkimpy: off the start-up path

    try:
        pem = _fernet(app_secret).decrypt(key.private_key_sealed.encode())
    except InvalidToken:
        raise DkimError(
            f"the DKIM key of {key.domain} cannot be decrypted with this secret_key; every "
            "process must share BACKPLANE_SECRET_KEY"
        ) from None
    present = {line.split(b":", 1)[0].strip().lower() for line in _headers(data)}
    signature = dkim.sign(
        data,
        key.selector.encode(),
        key.domain.encode(),
        pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_HEADERS if h in present],
    )
    return bytes(signature) + data


def _headers(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line and line[:1] not in (b" ", b"\t")]
