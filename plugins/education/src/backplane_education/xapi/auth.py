"""LRS credentials: HTTP Basic key and secret, per tenant, scoped ``read``, ``write`` or ``all``.

xAPI clients speak HTTP Basic (xAPI 1.0.3 Part Three, 4), not bearer tokens, so the plugin
registers an auth backend (``register_auth_backends``) that claims every request under
``/xapi/``: a request there without Basic credentials is a 401 here, never the kernel's bearer
check. The key names its tenant (``xapi-<tenant id hex>-<random>``), so the credential is read
in that tenant's own session, never across tenants. Secrets are 160 random bits: the stored
SHA-256 cannot be reversed by guessing, and the comparison is constant-time. The kernel keys
its API keys with a server secret it does not hand to plugins; a slow password hash would buy
nothing for a random secret and would cost every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import uuid
from typing import Any

import msgspec
from litestar.exceptions import NotAuthorizedException

from backplane import AuthBackend, Principal, UnknownTenantError
from backplane_education.xapi.http import HEADERS, xapi_settings
from backplane_education.xapi.models import XapiCredential

PREFIX = "/xapi"
PUBLIC_PATHS = frozenset({"/xapi/about"})
SCOPES = ("read", "write", "all")
ROLE_OF_SCOPE = {"read": "viewer", "write": "member", "all": "member"}
"""The kernel role a credential acts with: a read-only key holds no write permission at all."""
_KEY = re.compile(r"^xapi-([0-9a-f]{32})-([0-9a-f]{16})$")
_CHALLENGE = {**HEADERS, "WWW-Authenticate": 'Basic realm="xapi"'}


class Issued(msgspec.Struct, frozen=True):
    key: str
    secret: str


def new_credential(tenant_id: uuid.UUID) -> Issued:
    return Issued(
        key=f"xapi-{tenant_id.hex}-{secrets.token_hex(8)}", secret=secrets.token_urlsafe(20)
    )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class _Known(msgspec.Struct, frozen=True):
    digest: str
    scope: str
    revoked: bool
    read_at: float


_cache: dict[str, _Known] = {}


def forget(key: str) -> None:
    """Drop a key from this process's cache (on revocation)."""
    _cache.pop(key, None)


def _refuse(message: str) -> NotAuthorizedException:
    return NotAuthorizedException(message, headers=_CHALLENGE)


def _basic(header: str | None) -> tuple[str, str]:
    if not header or not header[:6].lower() == "basic ":
        raise _refuse("xAPI resources need HTTP Basic credentials (an LRS key and secret)")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _refuse("malformed HTTP Basic credentials") from None
    key, colon, secret = decoded.partition(":")
    if not colon:
        raise _refuse("malformed HTTP Basic credentials")
    return key, secret


async def _lookup(kernel: Any, tenant_id: uuid.UUID, key: str) -> _Known | None:
    ttl = xapi_settings(kernel.plugin_settings).credential_cache_s
    known = _cache.get(key)
    now = time.monotonic()
    if known is not None and now - known.read_at < ttl:
        return known
    try:
        async with kernel.tenant(tenant_id) as bound:
            row = await bound.db.get(XapiCredential, key)
    except UnknownTenantError:
        return None
    if row is None:
        _cache.pop(key, None)
        return None
    known = _Known(row.secret_digest, row.scope, row.revoked_at is not None, now)
    _cache[key] = known
    return known


async def authenticate(connection: Any, kernel: Any) -> Principal | None:
    """The principal of an LRS credential on ``/xapi/`` paths; None elsewhere (the kernel's
    bearer backend answers there); 401 with a Basic challenge for anything else on ``/xapi/``."""
    path = connection.scope.get("path", "")
    if not (path == PREFIX or path.startswith(PREFIX + "/")) or path in PUBLIC_PATHS:
        return None
    key, secret = _basic(connection.headers.get("authorization"))
    match = _KEY.match(key)
    if match is None:
        raise _refuse("unknown LRS key")
    tenant_id = uuid.UUID(match.group(1))
    known = await _lookup(kernel, tenant_id, key)
    if known is None or not hmac.compare_digest(known.digest, digest(secret)):
        raise _refuse("unknown LRS key or wrong secret")
    if known.revoked:
        raise _refuse("the LRS key was revoked")
    principal: Principal = await kernel.principal_for(
        tenant_id, ROLE_OF_SCOPE[known.scope], subject=f"xapi:{known.scope}:{key}"
    )
    return principal


BACKEND = AuthBackend(name="xapi_basic", authenticate=authenticate)
