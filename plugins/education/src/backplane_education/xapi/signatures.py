"""Signed statements (xAPI 1.0.3 Part Two, 2.6): a JWS attachment whose payload is the statement.

The LRS refuses (400) a signature that is not a compact JWS, uses an algorithm other than
RS256/RS384/RS512, does not verify against the certificate in its ``x5c`` header, or whose
payload is not the statement it signs. joserfc (the kernel's JOSE library) does the JWS work;
``cryptography`` reads the certificate.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from backplane_education.xapi.multipart import Part
from backplane_education.xapi.validation import bad

SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"
ALGORITHMS = ("RS256", "RS384", "RS512")


def _registry() -> JWSRegistry:
    """RS256/384/512 only; room for an ``x5c`` certificate chain in the header (joserfc's
    default 512 bytes is for tokens without one) and for a large statement as payload."""
    registry = JWSRegistry(algorithms=list(ALGORITHMS))
    registry.max_header_length = 16_384
    registry.max_payload_length = 1_048_576
    registry.max_signature_length = 1_024
    return registry


REGISTRY = _registry()
_SET_BY_LRS = ("authority", "stored", "version")
"""Properties the signer may have left out and the LRS sets: not part of the comparison."""


def signature_attachment(statement: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in statement.get("attachments", []):
        if attachment.get("usageType") == SIGNATURE_USAGE:
            return dict(attachment)
    return None


def check_signed(statement: dict[str, Any], parts: dict[str, Part]) -> None:
    """400 unless the statement's signature attachment (if any) is a valid JWS of it."""
    attachment = signature_attachment(statement)
    if attachment is None:
        return
    if attachment.get("contentType") != "application/octet-stream":
        raise bad("a signature attachment's contentType must be application/octet-stream")
    part = parts.get(str(attachment.get("sha2", "")).lower())
    if part is None:
        raise bad("a signed statement must carry its signature as a multipart part")
    try:
        token = jws.extract_compact(part.content.strip(), registry=REGISTRY)
    except (JoseError, ValueError) as error:
        raise bad(f"the signature is not a compact JWS: {error}") from None
    header = token.headers()
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise bad(f"the signature's algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if "x5c" in header:
        _verify(part.content.strip(), header["x5c"], algorithm)
    try:
        payload = msgspec.json.decode(token.payload)
    except msgspec.DecodeError:
        raise bad("the signature's payload is not JSON") from None
    if not isinstance(payload, dict) or not same_statement(payload, statement):
        raise bad("the signature's payload does not match the statement")


def _verify(content: bytes, chain: Any, algorithm: str) -> None:
    try:
        der = base64.b64decode(chain[0])
        certificate = x509.load_der_x509_certificate(der)
        pem = certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key = RSAKey.import_key(pem)
        jws.deserialize_compact(content, key, algorithms=[algorithm], registry=REGISTRY)
    except (JoseError, ValueError, TypeError, IndexError) as error:
        raise bad(f"the signature does not verify against its x5c certificate: {error}") from None


def _comparable(statement: dict[str, Any], *, drop_signature: bool) -> dict[str, Any]:
    value = {k: v for k, v in statement.items() if k not in _SET_BY_LRS}
    if drop_signature and "attachments" in value:
        kept = [a for a in value["attachments"] if a.get("usageType") != SIGNATURE_USAGE]
        if kept:
            value["attachments"] = kept
        else:
            del value["attachments"]
    return value


def same_statement(payload: dict[str, Any], statement: dict[str, Any]) -> bool:
    """Whether the signed ``payload`` is ``statement``, up to what the LRS sets (and an id or
    timestamp the signer did not include) and the signature attachment itself."""
    signed = _comparable(payload, drop_signature=True)
    stored = _comparable(statement, drop_signature=True)
    for optional in ("id", "timestamp"):
        if optional not in signed:
            stored.pop(optional, None)
    return signed == stored
