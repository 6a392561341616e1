"""Access tokens (ES256 JWTs from a rotating keyring), opaque refresh tokens and API keys.

Pure computation: storing the keyring, the digests and the revoked-``jti`` denylist (logout)
belongs to the caller.

Why these choices:

- **ES256** (ECDSA P-256): verifiers only ever need the public half, which we publish as a JWKS,
  so a leaked verifier (a plugin, a sidecar, a log) cannot mint tokens; signatures and keys are
  small, and verification is fast enough for every request.
- **One accepted algorithm.** The header's ``alg`` must be exactly ``ES256`` and the key is
  chosen by ``kid`` from our keyring, never from the token (``jwk``/``jku``/``x5u`` headers are
  refused), so ``alg: none`` and HS256-with-the-public-key confusion cannot work.
- **``typ: at+jwt``** (RFC 9068) marks these as access tokens, so any other JWT signed with the
  same keys later (an invitation, an e-mail confirmation) cannot be replayed as one.
- **``sub`` is the user id**, never the e-mail: e-mails change and are personal data.
- **Refresh tokens are opaque** random strings stored as SHA-256 digests: they are only ever
  looked up, so they need no signature, and 256 random bits make a fast hash safe.
- **API keys** are ``bp_<id>_<secret>``: the id finds the row, the secret is compared as an
  HMAC under the server secret (a stolen database alone does not yield usable keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

import msgspec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

__all__ = [
    "ALGORITHM",
    "API_KEY_PREFIX",
    "DEFAULT_LEEWAY_S",
    "TOKEN_TYPE",
    "AccessClaims",
    "ApiKeyParts",
    "InvalidToken",
    "IssuedToken",
    "Keyring",
    "SigningKey",
    "TokenService",
    "api_key_digest",
    "decode_keyring",
    "encode_keyring",
    "hash_opaque_token",
    "new_api_key",
    "new_opaque_token",
    "new_signing_key",
    "parse_api_key",
    "verify_api_key_digest",
]

ALGORITHM: Final = "ES256"
CURVE: Final = "P-256"
TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
DEFAULT_LEEWAY_S: Final = 30
"""Clock skew tolerated between the processes that issue and verify tokens."""
MAX_TOKEN_LENGTH: Final = 8192
"""Anything longer is refused before parsing: ours are well under 1 KiB."""

_REGISTERED_CLAIMS: Final = frozenset({"sub", "tid", "iss", "aud", "exp", "iat", "jti", "nbf"})

Reason = Literal[
    "malformed",
    "bad_signature",
    "unknown_kid",
    "unsupported_alg",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "missing_claims",
    "invalid_claims",
    "revoked",
    "bad_api_key_format",
]


VERIFIED_CACHE_SIZE: Final = 10_000
"""Verified access tokens remembered per process (LRU), to skip repeated signature checks."""


class InvalidToken(Exception):  # noqa: N818 - the name the identity layer agreed on
    """Any credential that must be refused. One type for every failure, so that callers answer
    401 uniformly; ``reason`` (never the token) is for the server's log, not the client."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason: Reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class SigningKey(msgspec.Struct, kw_only=True, frozen=True):
    """One ES256 key pair as a private JWK; ``repr`` hides it (it must never reach a log)."""

    kid: str
    private_jwk: dict[str, Any]
    created_at: int
    retired_at: int | None = None

    def __repr__(self) -> str:
        return (
            f"SigningKey(kid={self.kid!r}, created_at={self.created_at}, "
            f"retired_at={self.retired_at}, private_jwk=<redacted>)"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("kid", self.kid),
            ("created_at", self.created_at),
            ("retired_at", self.retired_at),
            ("private_jwk", "<redacted>"),
        ]

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK carrying ``kid``, ``alg`` and ``use`` (for a JWKS)."""
        public = {k: v for k, v in self.private_jwk.items() if k in ("kty", "crv", "x", "y")}
        return {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def new_signing_key(now: int | None = None) -> SigningKey:
    """A fresh key; its ``kid`` is random rather than a JWK thumbprint so that it reveals nothing
    and stays stable however the JWK is serialised."""
    key = ECKey.generate_key(CURVE, private=True)
    return SigningKey(
        kid=secrets.token_urlsafe(12),
        private_jwk=dict(key.as_dict(private=True)),
        created_at=int(time.time()) if now is None else now,
    )


class Keyring(msgspec.Struct, kw_only=True, frozen=True):
    """Every key whose tokens may still be valid; the newest non-retired key signs. Immutable:
    the caller stores a rotated keyring and hands it to :meth:`TokenService.update_keyring`."""

    keys: list[SigningKey] = msgspec.field(default_factory=list)

    @classmethod
    def generate(cls, now: int | None = None) -> Keyring:
        return cls(keys=[new_signing_key(now)])

    def active_key(self) -> SigningKey:
        active = [k for k in self.keys if k.retired_at is None]
        if not active:
            raise LookupError("the keyring has no active signing key; rotate it")
        return max(active, key=lambda k: k.created_at)

    def rotate(
        self, now: int | None = None, access_ttl_s: int = 900, leeway_s: int = DEFAULT_LEEWAY_S
    ) -> Keyring:
        """Add a new active key, retire the others at ``now`` and :meth:`prune`: a key retired
        at ``R`` signed no token valid after ``R + access_ttl_s + leeway_s``, so keeping it
        longer would only widen what a stolen old key could do."""
        now = int(time.time()) if now is None else now
        retired = [
            k if k.retired_at is not None else msgspec.structs.replace(k, retired_at=now)
            for k in self.keys
        ]
        rotated = Keyring(keys=[*retired, new_signing_key(now)])
        return rotated.prune(now, access_ttl_s=access_ttl_s, leeway_s=leeway_s)

    def prune(
        self, now: int | None = None, access_ttl_s: int = 900, leeway_s: int = DEFAULT_LEEWAY_S
    ) -> Keyring:
        """Drop keys retired longer ago than any token they signed can still be valid."""
        now = int(time.time()) if now is None else now
        horizon = now - access_ttl_s - leeway_s
        kept = [k for k in self.keys if k.retired_at is None or k.retired_at >= horizon]
        return Keyring(keys=kept)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set for ``/.well-known/jwks.json`` (no private material)."""
        ordered = sorted(self.keys, key=lambda k: k.created_at, reverse=True)
        return {"keys": [k.public_jwk() for k in ordered]}


def encode_keyring(keyring: Keyring) -> bytes:
    """Serialise a keyring to JSON bytes (contains private keys: store it encrypted)."""
    return msgspec.json.encode(keyring)


def decode_keyring(data: bytes | str) -> Keyring:
    """Parse what :func:`encode_keyring` produced; every key is checked to be a P-256 key."""
    keyring = msgspec.json.decode(data, type=Keyring)
    for key in keyring.keys:
        if key.private_jwk.get("kty") != "EC" or key.private_jwk.get("crv") != CURVE:
            raise ValueError(f"key {key.kid!r} is not an EC {CURVE} key")
        if "d" not in key.private_jwk:
            raise ValueError(f"key {key.kid!r} has no private part")
    return keyring


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    """A freshly signed access token and what the caller needs to track it."""

    token: str
    jti: str
    expires_at: int

    def __repr__(self) -> str:
        return f"IssuedToken(jti={self.jti!r}, expires_at={self.expires_at}, token=<redacted>)"


class AccessClaims(msgspec.Struct, kw_only=True, frozen=True):
    """The verified claims of an access token: ``extra`` holds the unregistered ones, ``kid``
    (the header's) helps the logs when a rotation goes wrong."""

    sub: str
    tid: str | None
    iss: str
    aud: str
    exp: int
    iat: int
    jti: str
    kid: str
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


class _WireClaims(msgspec.Struct, forbid_unknown_fields=False):
    """Types every registered claim must have; anything else goes to ``extra``."""

    sub: str
    tid: str | None
    iss: str
    aud: str | list[str]
    exp: int
    iat: int
    jti: str
    nbf: int | None = None


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    alg: str
    kid: str
    typ: str


_claims_decoder = msgspec.json.Decoder(dict[str, Any])


class TokenService:
    """Issues and verifies access tokens with one keyring, one per process. Tokens signed by a
    key this process has not loaded fail with ``unknown_kid``: reload (:meth:`update_keyring`)
    before or upon that reason."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keyring: Keyring,
        access_ttl_s: int = 900,
        leeway_s: int = DEFAULT_LEEWAY_S,
    ) -> None:
        if access_ttl_s <= 0 or leeway_s < 0:
            raise ValueError("access_ttl_s must be positive and leeway_s non-negative")
        self.issuer = issuer
        self.audience = audience
        self.access_ttl_s = access_ttl_s
        self.leeway_s = leeway_s
        self.update_keyring(keyring)

    def __repr__(self) -> str:
        kids = [k.kid for k in self._keyring.keys]
        return f"TokenService(issuer={self.issuer!r}, audience={self.audience!r}, kids={kids})"

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def update_keyring(self, keyring: Keyring) -> None:
        """Swap in a new keyring (after a rotation); imports each key once, not per request."""
        public = {key.kid: (key, ECKey.import_key(key.public_jwk())) for key in keyring.keys}
        try:
            active = keyring.active_key()
        except LookupError:
            signer = None  # a verify-only process may hold retired keys alone
        else:
            signer = (active, ECKey.import_key(active.private_jwk))
        self._keyring, self._public, self._signer = keyring, public, signer
        # A removed key's tokens must stop verifying.
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def jwks(self) -> dict[str, Any]:
        return self._keyring.jwks()

    def issue_access_token(
        self,
        *,
        user_id: str,
        tenant_id: str | None,
        now: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token for ``user_id`` acting in ``tenant_id`` (``None``: no active tenant);
        ``extra`` adds claims (scopes, a session id) but may not override registered ones."""
        if self._signer is None:
            raise LookupError("the keyring has no active signing key; rotate it")
        if not user_id:
            raise ValueError("user_id is required")
        clash = _REGISTERED_CLAIMS.intersection(extra or {})
        if clash:
            raise ValueError(f"extra claims may not override {sorted(clash)}")
        now = int(time.time()) if now is None else now
        key, private_key = self._signer
        jti = secrets.token_urlsafe(16)
        expires_at = now + self.access_ttl_s
        claims = {
            **(extra or {}),
            "sub": user_id,
            "tid": tenant_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": expires_at,
            "jti": jti,
        }
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
        token = jws.serialize_compact(
            header, msgspec.json.encode(claims), private_key, algorithms=[ALGORITHM]
        )
        return IssuedToken(token=token, jti=jti, expires_at=expires_at)

    def verify_access_token(
        self, token: str, now: int | None = None, *, is_revoked: Callable[[str], bool] | None = None
    ) -> AccessClaims:
        """The claims of a valid token, else :class:`InvalidToken`. ``is_revoked(jti)`` is asked
        last, so a denylist lookup is never spent on forged or expired tokens."""
        claims = self._verify(token, now)
        if is_revoked is not None and is_revoked(claims.jti):
            raise InvalidToken("revoked")
        return claims

    async def averify_access_token(
        self,
        token: str,
        now: int | None = None,
        *,
        is_revoked: Callable[[str], Awaitable[bool]] | None = None,
    ) -> AccessClaims:
        """:meth:`verify_access_token` with an asynchronous denylist (Redis, the database)."""
        claims = self._verify(token, now)
        if is_revoked is not None and await is_revoked(claims.jti):
            raise InvalidToken("revoked")
        return claims

    def _verify(self, token: str, now: int | None) -> AccessClaims:
        """Verify, or reuse a verification of exactly this token text: an ES256 check (~130 µs)
        is the largest part of an authenticated request, and a client sends the same token for
        minutes. Expiry is re-checked on every hit, revocation by the caller afterwards."""
        now = int(time.time()) if now is None else now
        cached = self._verified.get(token) if isinstance(token, str) else None
        if cached is not None:
            if cached.exp + self.leeway_s <= now:
                self._verified.pop(token, None)
                raise InvalidToken("expired")
            self._verified.move_to_end(token)
            return cached
        claims = self._verify_uncached(token, now)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify_uncached(self, token: str, now: int) -> AccessClaims:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed", "not a string or too long")
        try:
            obj = jws.extract_compact(token.encode("ascii"))
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken("malformed", type(exc).__name__) from None
        raw_header = obj.headers()
        alg = raw_header.get("alg")
        if alg != ALGORITHM:
            raise InvalidToken("unsupported_alg", repr(alg)[:40])
        try:
            header = msgspec.convert(raw_header, _Header)
        except msgspec.ValidationError as exc:
            raise InvalidToken("malformed", f"header: {exc}") from None
        if header.typ.lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
            raise InvalidToken("malformed", "header typ is not at+jwt")
        entry = self._public.get(header.kid)
        if entry is None:
            raise InvalidToken("unknown_kid", header.kid[:40])
        signing_key, public_key = entry
        try:
            valid = jws.validate_compact(obj, public_key, algorithms=[ALGORITHM])
        except JoseError as exc:
            raise InvalidToken("bad_signature", type(exc).__name__) from None
        if not valid:
            raise InvalidToken("bad_signature")
        claims = self._check_claims(obj.payload or b"", now, header.kid)
        retired_at = signing_key.retired_at
        if retired_at is not None and claims.iat > retired_at + self.leeway_s:
            # Only a stolen retired key (or a badly wrong clock) signs after retirement.
            raise InvalidToken("invalid_claims", "issued after its key was retired")
        return claims

    def _check_claims(self, payload: bytes, now: int, kid: str) -> AccessClaims:
        try:
            raw = _claims_decoder.decode(payload)
        except msgspec.DecodeError:
            raise InvalidToken("malformed", "payload is not a JSON object") from None
        missing = [c for c in ("sub", "tid", "iss", "aud", "exp", "iat", "jti") if c not in raw]
        if missing:
            raise InvalidToken("missing_claims", ",".join(missing))
        try:
            wire = msgspec.convert(raw, _WireClaims)
        except msgspec.ValidationError as exc:
            raise InvalidToken("invalid_claims", str(exc)) from None
        if not wire.sub or not wire.jti:
            raise InvalidToken("missing_claims", "empty sub or jti")
        if wire.iss != self.issuer:
            raise InvalidToken("wrong_issuer")
        audiences = [wire.aud] if isinstance(wire.aud, str) else wire.aud
        if self.audience not in audiences:
            raise InvalidToken("wrong_audience")
        if wire.exp <= now - self.leeway_s:
            raise InvalidToken("expired")
        if wire.iat > now + self.leeway_s or (
            wire.nbf is not None and wire.nbf > now + self.leeway_s
        ):
            raise InvalidToken("not_yet_valid")
        return AccessClaims(
            sub=wire.sub,
            tid=wire.tid,
            iss=wire.iss,
            aud=self.audience,
            exp=wire.exp,
            iat=wire.iat,
            jti=wire.jti,
            kid=kid,
            extra={k: v for k, v in raw.items() if k not in _REGISTERED_CLAIMS},
        )


OPAQUE_TOKEN_BYTES: Final = 32  # 256 bits


def new_opaque_token(prefix: str) -> tuple[str, str]:
    """A random ``<prefix>_<secret>`` token and its digest (store only that). The prefix lets
    secret scanners and humans recognise it; 256 random bits make a fast hash enough."""
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", prefix):
        raise ValueError("prefix must be 1-16 lower-case letters and digits")
    token = f"{prefix}_{secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)}"
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    """The SHA-256 hex digest under which an opaque token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


API_KEY_PREFIX: Final = "bp"
_API_KEY_ID_BYTES: Final = 8  # 16 hex characters: a lookup handle, not a secret
_API_KEY_SECRET_BYTES: Final = 20  # 160 bits, exactly 32 base32 characters (no padding)
_API_KEY_RE: Final = re.compile(r"bp_([0-9a-f]{16})_([a-z2-7]{32})")
_API_KEY_HMAC_CONTEXT: Final = b"backplane api key v1\x00"


class ApiKeyParts(msgspec.Struct, kw_only=True, frozen=True):
    """A new API key: ``full`` is shown to the user once; store ``key_id`` and the digest."""

    key_id: str
    secret: str
    full: str

    def __repr__(self) -> str:
        return f"ApiKeyParts(key_id={self.key_id!r}, secret=<redacted>)"


def new_api_key() -> ApiKeyParts:
    """``bp_<16 hex id>_<32 base32 secret>``: no ``_`` inside a part, so parsing is unambiguous;
    lower-case base32 keeps the key double-click selectable and safe in URLs, headers, shells."""
    key_id = secrets.token_hex(_API_KEY_ID_BYTES)
    secret = base64.b32encode(secrets.token_bytes(_API_KEY_SECRET_BYTES)).decode().lower()
    return ApiKeyParts(key_id=key_id, secret=secret, full=f"{API_KEY_PREFIX}_{key_id}_{secret}")


def parse_api_key(full: str) -> tuple[str, str]:
    """``(key_id, secret)``, checked exactly (lengths, alphabets) before any database lookup."""
    match = _API_KEY_RE.fullmatch(full) if isinstance(full, str) else None
    if match is None:
        raise InvalidToken("bad_api_key_format")
    return match.group(1), match.group(2)


def api_key_digest(secret: str, server_secret: str) -> str:
    """HMAC-SHA256 under the server secret: a copy of the database alone cannot test guesses
    (and changing the server secret invalidates every API key)."""
    if not server_secret:
        raise ValueError("server_secret is required")
    mac = hmac.new(server_secret.encode("utf-8"), _API_KEY_HMAC_CONTEXT, hashlib.sha256)
    mac.update(secret.encode("utf-8"))
    return mac.hexdigest()


def verify_api_key_digest(secret: str, server_secret: str, expected_digest: str) -> bool:
    """Compare ``secret``'s digest with the stored one in constant time."""
    actual = api_key_digest(secret, server_secret).encode("ascii")
    return hmac.compare_digest(actual, expected_digest.encode("utf-8"))
