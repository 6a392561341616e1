"""Ed25519 with the ``cryptography`` package: publisher keys and detached signatures.

What a publisher signs is never the raw artifact but a short, domain-separated statement
naming its SHA-256 (:func:`artifact_message`), so a signature made for an artifact cannot be
replayed as anything else (a key's proof of possession, :func:`key_proof_message`) and
verifying never needs the artifact in memory twice. Keys and signatures travel as standard
base64 of their raw bytes (32 and 64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ARTIFACT_DOMAIN = b"backplane.marketplace.artifact.v1\n"
KEY_PROOF_DOMAIN = b"backplane.marketplace.key-proof.v1\n"
SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")


class SignatureError(ValueError):
    """A key or signature that is malformed, or a signature that does not verify."""


def _raw(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not base64") from None
    if len(raw) != size:
        raise SignatureError(f"{what} must be {size} bytes (base64 of the raw value)")
    return raw


def public_key(text: str) -> Ed25519PublicKey:
    """The Ed25519 public key in ``text`` (base64 of its 32 raw bytes)."""
    return Ed25519PublicKey.from_public_bytes(_raw(text, 32, "the public key"))


def fingerprint(text: str) -> str:
    """SHA-256 of the raw public key, hex: a key's name in signatures and listings."""
    return hashlib.sha256(_raw(text, 32, "the public key")).hexdigest()


def artifact_message(sha256_hex: str) -> bytes:
    """What a publisher signs for an artifact: the domain line and its SHA-256 in hex."""
    if not SHA256_HEX.match(sha256_hex):
        raise SignatureError("an artifact digest is 64 lower-case hex digits")
    return ARTIFACT_DOMAIN + sha256_hex.encode()


def key_proof_message(publisher_id: uuid.UUID, key_text: str) -> bytes:
    """What a new key signs to prove its owner holds the private half (registration)."""
    return KEY_PROOF_DOMAIN + f"{publisher_id}\n{key_text}".encode()


def verify(key_text: str, signature: str, message: bytes) -> None:
    """Nothing if ``signature`` (base64, 64 bytes) is ``key_text``'s over ``message``."""
    key = public_key(key_text)
    try:
        key.verify(_raw(signature, 64, "the signature"), message)
    except InvalidSignature:
        raise SignatureError("the signature does not verify with the publisher's key") from None
