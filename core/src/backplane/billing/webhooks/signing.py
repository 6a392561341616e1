"""The webhook signature scheme (Stripe's shape), for the sender and for receivers.

Every delivery carries the header::

    Backplane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

where the HMAC key is the endpoint's secret (the whole ``whsec_...`` string, UTF-8) and the
signed message is ``f"{t}.{body}"``: the timestamp, a dot, and the exact raw request body.
A receiver recomputes the HMAC over the raw body it received (before any JSON parsing),
compares in constant time with any ``v1`` value, and rejects timestamps further than a
tolerance from its clock, which bounds replays. Each attempt is signed afresh, so a retry's
timestamp is current.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Backplane-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class InvalidSignatureError(ValueError):
    """A delivery's signature header is missing, malformed, too old or does not match."""


def new_secret() -> str:
    """A fresh endpoint secret (shown to the tenant once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + (body.encode() if isinstance(body, str) else body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: str | bytes, timestamp: int | None = None) -> str:
    """The ``Backplane-Signature`` header value for ``body``, signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{SCHEME}={sign(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: str | bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> None:
    """Check a received ``Backplane-Signature`` header against the raw ``body``.

    Returns nothing when the signature is valid; raises :class:`InvalidSignatureError` naming
    the problem otherwise. ``tolerance_s`` bounds how far the signed timestamp may be from now
    (replay protection); ``now`` is for tests.
    """
    if not header:
        raise InvalidSignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignatureError(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignatureError("the signature timestamp is not an integer") from None
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None:
        raise InvalidSignatureError("the signature header has no timestamp (t=)")
    if not candidates:
        raise InvalidSignatureError(f"the signature header has no {SCHEME} signature")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise InvalidSignatureError(
            f"the signature timestamp is outside the tolerance of {tolerance_s:g} s"
        )
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignatureError("no signature matches the body and secret")
