"""Signed download URLs: for clients that cannot send ``Authorization`` (a ``<video>`` tag).

A signed URL carries a compact JWS, ES256-signed with the kernel's token keyring (no second
secret to keep, rotate and seal), whose claims bind it to one tenant (``tid``), one file
(``fid``) and an expiry (``exp``). Its header's ``typ`` is ``bp-file+jwt``: an access token
(``at+jwt``) is refused here and a file signature is refused as an access token, so neither
can stand in for the other. Only ``ES256`` with a ``kid`` of our keyring is accepted.

A keyring rotation keeps a retired key for ``auth.access_ttl_s`` (plus leeway): signed URLs
older than that stop working after a rotation, which their short lives make rare.
"""

from __future__ import annotations

import time
import uuid
from typing import Final

import msgspec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from backplane.identity.runtime import Identity
from backplane.identity.tokens import ALGORITHM

TOKEN_TYPE: Final = "bp-file+jwt"  # noqa: S105 - a media type, not a secret
MAX_SIGNATURE_LENGTH: Final = 2048
LEEWAY_S: Final = 5
"""Clock skew tolerated between the process that signs and the one that serves."""


class SignatureRefused(Exception):  # noqa: N818 - named for what the client sees
    """The signature is missing, malformed, forged, for another file, or expired; the message
    says which, never anything secret."""


class FileClaims(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tid: uuid.UUID
    fid: uuid.UUID
    exp: int


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    alg: str
    kid: str
    typ: str


def sign(identity: Identity, tenant_id: uuid.UUID, file_id: uuid.UUID, expires_at: int) -> str:
    """A signature for ``file_id`` of ``tenant_id`` valid until ``expires_at`` (Unix time)."""
    key = identity.tokens.keyring.active_key()
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
    claims = msgspec.json.encode(FileClaims(tid=tenant_id, fid=file_id, exp=expires_at))
    private = ECKey.import_key(key.private_jwk)
    return jws.serialize_compact(header, claims, private, algorithms=[ALGORITHM])


async def verify(
    identity: Identity, signature: str, file_id: uuid.UUID, now: float | None = None
) -> FileClaims:
    """The claims of a valid signature for ``file_id``; :class:`SignatureRefused` otherwise.

    A ``kid`` this process has not loaded makes it re-read the keyring once (another process
    may have rotated it), at most once a second."""
    if not signature or len(signature) > MAX_SIGNATURE_LENGTH:
        raise SignatureRefused("the signed URL has no valid signature (sig)")
    try:
        obj = jws.extract_compact(signature.encode("ascii"))
        header = msgspec.convert(obj.headers(), _Header)
    except (JoseError, ValueError, TypeError, msgspec.ValidationError):
        raise SignatureRefused("the signed URL's signature is malformed") from None
    if header.alg != ALGORITHM or header.typ != TOKEN_TYPE:
        raise SignatureRefused("the signed URL's signature is not a file signature")
    key = _public_key(identity, header.kid)
    if key is None:
        await identity.refresh_keyring(force=True)
        key = _public_key(identity, header.kid)
    try:
        valid = key is not None and jws.validate_compact(obj, key, algorithms=[ALGORITHM])
    except JoseError:
        valid = False
    if not valid:
        raise SignatureRefused("the signed URL's signature is not valid")
    try:
        claims = msgspec.json.decode(obj.payload or b"", type=FileClaims)
    except msgspec.DecodeError:
        raise SignatureRefused("the signed URL's signature is malformed") from None
    if claims.fid != file_id:
        raise SignatureRefused("the signed URL is for another file")
    moment = time.time() if now is None else now
    if claims.exp + LEEWAY_S <= moment:
        raise SignatureRefused("the signed URL has expired; ask for a new one")
    return claims


def _public_key(identity: Identity, kid: str) -> ECKey | None:
    for key in identity.tokens.keyring.keys:
        if key.kid == kid:
            return ECKey.import_key(key.public_jwk())
    return None
