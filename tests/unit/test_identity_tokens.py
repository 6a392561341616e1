"""Access tokens, keyring rotation, refresh tokens and API keys (backplane.identity.tokens)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from backplane.identity.tokens import (
    ALGORITHM,
    DEFAULT_LEEWAY_S,
    AccessClaims,
    InvalidToken,
    Keyring,
    SigningKey,
    TokenService,
    api_key_digest,
    decode_keyring,
    encode_keyring,
    hash_opaque_token,
    new_api_key,
    new_opaque_token,
    new_signing_key,
    parse_api_key,
    verify_api_key_digest,
)

NOW = 1_800_000_000
TTL = 900
ISSUER = "https://backplane.test"
AUDIENCE = "backplane-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate(NOW - 3600)


@pytest.fixture
def service(keyring: Keyring) -> TokenService:
    return TokenService(issuer=ISSUER, audience=AUDIENCE, keyring=keyring, access_ttl_s=TTL)


def issue(service: TokenService, now: int = NOW, **kwargs: Any) -> str:
    return service.issue_access_token(
        user_id="user-1", tenant_id="tenant-1", now=now, **kwargs
    ).token


def reason_of(service: TokenService, token: str, now: int = NOW) -> str:
    with pytest.raises(InvalidToken) as caught:
        service.verify_access_token(token, now=now)
    return caught.value.reason


def claims_of(service: TokenService, **overrides: Any) -> dict[str, Any]:
    claims = {
        "sub": "user-1",
        "tid": "tenant-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + TTL,
        "jti": "j1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


def sign(service: TokenService, claims: dict[str, Any], **header: Any) -> str:
    """Sign arbitrary claims with the service's real active key (a forger holding the key)."""
    key = service.keyring.active_key()
    protected = {"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt", **header}
    protected = {k: v for k, v in protected.items() if v is not ...}
    return jws.serialize_compact(
        protected, json.dumps(claims).encode(), ECKey.import_key(key.private_jwk), [ALGORITHM]
    )


# -- round trip -------------------------------------------------------------------------------


def test_round_trip_carries_every_claim(service: TokenService) -> None:
    issued = service.issue_access_token(
        user_id="user-1", tenant_id="tenant-1", now=NOW, extra={"scp": ["read"]}
    )
    assert issued.expires_at == NOW + TTL
    claims = service.verify_access_token(issued.token, now=NOW + 10)
    assert claims == AccessClaims(
        sub="user-1",
        tid="tenant-1",
        iss=ISSUER,
        aud=AUDIENCE,
        exp=NOW + TTL,
        iat=NOW,
        jti=issued.jti,
        kid=service.keyring.active_key().kid,
        extra={"scp": ["read"]},
    )


def test_header_and_payload_are_what_the_contract_says(service: TokenService) -> None:
    issued = service.issue_access_token(user_id="user-1", tenant_id=None, now=NOW)
    header_segment, payload_segment, _ = issued.token.split(".")
    header = json.loads(unb64url(header_segment))
    payload = json.loads(unb64url(payload_segment))
    assert header == {"alg": "ES256", "kid": service.keyring.active_key().kid, "typ": "at+jwt"}
    assert set(payload) == {"sub", "tid", "iss", "aud", "exp", "iat", "jti"}
    assert payload["sub"] == "user-1"
    assert payload["tid"] is None
    assert service.verify_access_token(issued.token, now=NOW).tid is None


def test_jti_is_random_per_token(service: TokenService) -> None:
    jtis = {service.issue_access_token(user_id="u", tenant_id=None, now=NOW).jti for _ in range(50)}
    assert len(jtis) == 50
    assert all(len(j) >= 20 for j in jtis)


def test_extra_claims_cannot_override_registered_ones(service: TokenService) -> None:
    with pytest.raises(ValueError, match="override"):
        service.issue_access_token(user_id="u", tenant_id=None, extra={"sub": "admin"})
    with pytest.raises(ValueError, match="user_id"):
        service.issue_access_token(user_id="", tenant_id=None)


# -- tampering and forgery --------------------------------------------------------------------


def test_tampered_payload_is_refused(service: TokenService) -> None:
    header, payload, signature = issue(service).split(".")
    claims = json.loads(unb64url(payload))
    claims["sub"] = "user-2"
    forged = f"{header}.{b64url_json(claims)}.{signature}"
    assert reason_of(service, forged) == "bad_signature"


def test_tampered_signature_is_refused(service: TokenService) -> None:
    header, payload, signature = issue(service).split(".")
    raw = bytearray(unb64url(signature))
    raw[5] ^= 0x01
    assert reason_of(service, f"{header}.{payload}.{b64url(bytes(raw))}") == "bad_signature"
    assert reason_of(service, f"{header}.{payload}.") == "bad_signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        "eyJhbGciOiJFUzI1NiJ9.e30",
        "x" * 10_000,
        "ünïcode.ünïcode.ünïcode",
    ],
)
def test_malformed_tokens_are_refused(service: TokenService, token: str) -> None:
    assert reason_of(service, token) in {"malformed", "unsupported_alg"}


def test_alg_none_crafted_by_hand_is_refused(service: TokenService) -> None:
    kid = service.keyring.active_key().kid
    for alg in ("none", "None", "NONE"):
        header = b64url_json({"alg": alg, "kid": kid, "typ": "at+jwt"})
        token = f"{header}.{b64url_json(claims_of(service))}."
        assert reason_of(service, token) == "unsupported_alg"


def test_hs256_signed_with_the_public_key_is_refused(service: TokenService) -> None:
    """Key confusion: an attacker HMACs with the published public key as the secret."""
    key = service.keyring.active_key()
    jwk_public = json.dumps(service.jwks()["keys"][0]).encode()
    pem_public = ECKey.import_key(key.public_jwk()).as_pem(private=False)
    for secret in (jwk_public, pem_public):
        signing_input = (
            f"{b64url_json({'alg': 'HS256', 'kid': key.kid, 'typ': 'at+jwt'})}."
            f"{b64url_json(claims_of(service))}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert reason_of(service, f"{signing_input}.{b64url(mac)}") == "unsupported_alg"


def test_other_asymmetric_algorithms_are_refused(service: TokenService) -> None:
    token = issue(service)
    _header, payload, signature = token.split(".")
    swapped = b64url_json({"alg": "ES384", "kid": service.keyring.active_key().kid})
    assert reason_of(service, f"{swapped}.{payload}.{signature}") == "unsupported_alg"


def test_embedded_key_headers_are_refused(service: TokenService) -> None:
    """A token may not bring its own key (jwk/jku/x5u) or critical extensions."""
    public = service.keyring.active_key().public_jwk()
    assert reason_of(service, sign(service, claims_of(service), jwk=public)) == "malformed"
    assert reason_of(service, sign(service, claims_of(service), jku="https://x")) == "malformed"


def test_wrong_token_type_is_refused(service: TokenService) -> None:
    assert reason_of(service, sign(service, claims_of(service), typ="JWT")) == "malformed"
    assert reason_of(service, sign(service, claims_of(service), typ=...)) == "malformed"


def test_unknown_kid_is_refused(service: TokenService) -> None:
    other = TokenService(issuer=ISSUER, audience=AUDIENCE, keyring=Keyring.generate(NOW))
    assert reason_of(service, issue(other)) == "unknown_kid"
    _header, payload, signature = issue(service).split(".")
    no_kid = b64url_json({"alg": "ES256", "typ": "at+jwt"})
    assert reason_of(service, f"{no_kid}.{payload}.{signature}") == "malformed"


# -- claims -----------------------------------------------------------------------------------


def test_expired_token_is_refused_after_the_leeway(service: TokenService) -> None:
    token = issue(service)
    service.verify_access_token(token, now=NOW + TTL + DEFAULT_LEEWAY_S - 1)
    assert reason_of(service, token, now=NOW + TTL + DEFAULT_LEEWAY_S) == "expired"


def test_token_from_the_future_is_refused(service: TokenService) -> None:
    token = issue(service, now=NOW + DEFAULT_LEEWAY_S + 1)
    assert reason_of(service, token, now=NOW) == "not_yet_valid"
    service.verify_access_token(issue(service, now=NOW + DEFAULT_LEEWAY_S), now=NOW)
    nbf = sign(service, claims_of(service, nbf=NOW + 3600))
    assert reason_of(service, nbf) == "not_yet_valid"


def test_wrong_audience_is_refused(service: TokenService) -> None:
    other = TokenService(
        issuer=ISSUER, audience="another-api", keyring=service.keyring, access_ttl_s=TTL
    )
    assert reason_of(service, issue(other)) == "wrong_audience"
    assert reason_of(service, sign(service, claims_of(service, aud=["x", "y"]))) == "wrong_audience"
    listed = sign(service, claims_of(service, aud=["x", AUDIENCE]))
    assert service.verify_access_token(listed, now=NOW).aud == AUDIENCE


def test_wrong_issuer_is_refused(service: TokenService) -> None:
    other = TokenService(issuer="https://evil.test", audience=AUDIENCE, keyring=service.keyring)
    assert reason_of(service, issue(other)) == "wrong_issuer"


@pytest.mark.parametrize("missing", ["sub", "tid", "iss", "aud", "exp", "iat", "jti"])
def test_missing_claims_are_refused(service: TokenService, missing: str) -> None:
    token = sign(service, claims_of(service, **{missing: ...}))
    assert reason_of(service, token) == "missing_claims"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": 42},
        {"exp": "tomorrow"},
        {"exp": True},
        {"iat": 1.5},
        {"tid": ["a"]},
        {"sub": ""},
        {"jti": ""},
    ],
)
def test_ill_typed_claims_are_refused(service: TokenService, overrides: dict[str, Any]) -> None:
    token = sign(service, claims_of(service, **overrides))
    assert reason_of(service, token) in {"invalid_claims", "missing_claims"}


def test_non_object_payload_is_refused(service: TokenService) -> None:
    key = service.keyring.active_key()
    token = jws.serialize_compact(
        {"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"},
        b"[1, 2, 3]",
        ECKey.import_key(key.private_jwk),
        [ALGORITHM],
    )
    assert reason_of(service, token) == "malformed"


# -- revocation -------------------------------------------------------------------------------


def test_revocation_hook_is_consulted_only_for_valid_tokens(service: TokenService) -> None:
    issued = service.issue_access_token(user_id="u", tenant_id=None, now=NOW)
    asked: list[str] = []

    def is_revoked(jti: str) -> bool:
        asked.append(jti)
        return jti == issued.jti

    with pytest.raises(InvalidToken) as caught:
        service.verify_access_token(issued.token, now=NOW, is_revoked=is_revoked)
    assert caught.value.reason == "revoked"
    with pytest.raises(InvalidToken):
        service.verify_access_token(issued.token, now=NOW + 10 * TTL, is_revoked=is_revoked)
    assert asked == [issued.jti]  # the expired token never reached the denylist
    fresh = service.issue_access_token(user_id="u", tenant_id=None, now=NOW)
    assert service.verify_access_token(fresh.token, now=NOW, is_revoked=is_revoked).sub == "u"


async def test_async_revocation_hook(service: TokenService) -> None:
    issued = service.issue_access_token(user_id="u", tenant_id=None, now=NOW)
    denylist = {issued.jti}

    async def is_revoked(jti: str) -> bool:
        return jti in denylist

    with pytest.raises(InvalidToken, match="revoked"):
        await service.averify_access_token(issued.token, now=NOW, is_revoked=is_revoked)
    denylist.clear()
    claims = await service.averify_access_token(issued.token, now=NOW, is_revoked=is_revoked)
    assert claims.jti == issued.jti


# -- keyring and rotation ---------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_until_they_expire(service: TokenService) -> None:
    old_kid = service.keyring.active_key().kid
    old_token = issue(service, now=NOW)
    rotated_at = NOW + 60
    service.update_keyring(service.keyring.rotate(rotated_at, access_ttl_s=TTL))
    new_kid = service.keyring.active_key().kid
    assert new_kid != old_kid

    new_token = issue(service, now=rotated_at)
    assert json.loads(unb64url(new_token.split(".")[0]))["kid"] == new_kid
    assert service.verify_access_token(new_token, now=rotated_at).kid == new_kid
    assert service.verify_access_token(old_token, now=NOW + TTL - 1).kid == old_kid
    assert {k["kid"] for k in service.jwks()["keys"]} == {old_kid, new_kid}
    assert reason_of(service, old_token, now=NOW + TTL + DEFAULT_LEEWAY_S) == "expired"

    # Past the retention window the next rotation drops the old key entirely.
    later = rotated_at + TTL + DEFAULT_LEEWAY_S + 1
    service.update_keyring(service.keyring.rotate(later, access_ttl_s=TTL))
    kids = [k.kid for k in service.keyring.keys]
    assert old_kid not in kids
    assert new_kid in kids  # retired now, but its tokens are still valid
    assert len(kids) == 2
    assert reason_of(service, old_token, now=NOW) == "unknown_kid"
    assert old_kid not in {k["kid"] for k in service.jwks()["keys"]}


def test_prune_keeps_a_retired_key_exactly_as_long_as_needed(keyring: Keyring) -> None:
    rotated = keyring.rotate(NOW, access_ttl_s=TTL, leeway_s=10)
    assert len(rotated.prune(NOW + TTL + 10, access_ttl_s=TTL, leeway_s=10).keys) == 2
    assert len(rotated.prune(NOW + TTL + 11, access_ttl_s=TTL, leeway_s=10).keys) == 1


def test_a_retired_key_cannot_sign_new_tokens(service: TokenService) -> None:
    """A stolen retired key: tokens it signs after retirement are refused."""
    old = service.keyring.active_key()
    service.update_keyring(service.keyring.rotate(NOW, access_ttl_s=TTL))
    claims = claims_of(service, iat=NOW + 120, exp=NOW + 120 + TTL)
    token = jws.serialize_compact(
        {"alg": ALGORITHM, "kid": old.kid, "typ": "at+jwt"},
        json.dumps(claims).encode(),
        ECKey.import_key(old.private_jwk),
        [ALGORITHM],
    )
    assert reason_of(service, token, now=NOW + 120) == "invalid_claims"


def test_keyring_without_an_active_key_verifies_but_cannot_issue(service: TokenService) -> None:
    token = issue(service)
    retired = Keyring(
        keys=[SigningKey(**{**_fields(k), "retired_at": NOW}) for k in service.keyring.keys]
    )
    verifier = TokenService(issuer=ISSUER, audience=AUDIENCE, keyring=retired)
    assert verifier.verify_access_token(token, now=NOW).sub == "user-1"
    with pytest.raises(LookupError):
        verifier.issue_access_token(user_id="u", tenant_id=None)


def _fields(key: SigningKey) -> dict[str, Any]:
    return {f: getattr(key, f) for f in key.__struct_fields__}


def test_jwks_has_public_keys_only(service: TokenService) -> None:
    service.update_keyring(service.keyring.rotate(NOW, access_ttl_s=TTL))
    jwks = service.jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")
    assert jwks["keys"][0]["kid"] == service.keyring.active_key().kid  # newest first
    json.dumps(jwks)


def test_keyring_round_trips_through_bytes(keyring: Keyring) -> None:
    rotated = keyring.rotate(NOW, access_ttl_s=TTL)
    data = encode_keyring(rotated)
    assert isinstance(data, bytes)
    assert decode_keyring(data) == rotated
    assert decode_keyring(data.decode()) == rotated


def test_decode_keyring_refuses_foreign_keys() -> None:
    with pytest.raises(ValueError, match="P-256"):
        decode_keyring(
            b'{"keys":[{"kid":"k","private_jwk":{"kty":"oct","k":"AA"},"created_at":1}]}'
        )
    public_only = new_signing_key(NOW).public_jwk()
    bad = {"keys": [{"kid": "k", "private_jwk": public_only, "created_at": 1}]}
    with pytest.raises(ValueError, match="private"):
        decode_keyring(json.dumps(bad).encode())


def test_reprs_never_show_private_keys(service: TokenService) -> None:
    key = service.keyring.active_key()
    issued = service.issue_access_token(user_id="u", tenant_id=None)
    for text in (repr(key), str(key), repr(service.keyring), repr(service), repr(issued)):
        assert key.private_jwk["d"] not in text
        assert issued.token not in text
    assert "<redacted>" in repr(key)
    assert dict(key.__rich_repr__())["private_jwk"] == "<redacted>"


def test_new_signing_keys_are_distinct_es256_keys() -> None:
    a, b = new_signing_key(NOW), new_signing_key(NOW)
    assert a.kid != b.kid
    assert a.private_jwk["crv"] == "P-256"
    assert a.private_jwk["d"] != b.private_jwk["d"]
    assert a.created_at == NOW
    assert a.retired_at is None


def test_service_rejects_nonsense_configuration(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="access_ttl_s"):
        TokenService(issuer=ISSUER, audience=AUDIENCE, keyring=keyring, access_ttl_s=0)


# -- opaque refresh tokens --------------------------------------------------------------------


def test_opaque_tokens_are_random_prefixed_and_stored_as_digests() -> None:
    token, digest = new_opaque_token("bprt")
    assert token.startswith("bprt_")
    secret = token.removeprefix("bprt_")
    assert len(unb64url(secret)) == 32  # 256 bits
    assert digest == hashlib.sha256(token.encode()).hexdigest() == hash_opaque_token(token)
    assert len({new_opaque_token("bprt")[0] for _ in range(100)}) == 100


@pytest.mark.parametrize("prefix", ["", "Bad", "with_underscore", "x" * 17, "1abc"])
def test_opaque_token_prefix_is_validated(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_opaque_token(prefix)


# -- API keys ---------------------------------------------------------------------------------


def test_api_key_format_and_parse() -> None:
    parts = new_api_key()
    assert parts.full == f"bp_{parts.key_id}_{parts.secret}"
    assert parse_api_key(parts.full) == (parts.key_id, parts.secret)
    assert "_" not in parts.key_id
    assert "_" not in parts.secret
    assert len(base64.b32decode(parts.secret.upper())) * 8 >= 128
    assert parts.secret not in repr(parts)
    assert len({new_api_key().full for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "bp_",
        "bp__",
        "bp_0123456789abcdef_",
        "bp_0123456789abcdef",
        "xx_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
        "BP_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
        "bp_0123456789ABCDEF_abcdefghijklmnopqrstuvwxyz234567",
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz23456",  # one short
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz2345678",  # one long (8 not base32)
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz23456a7",  # one long
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz23456_",
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567\n",
        " bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
        "bp_0123456789abcdeg_abcdefghijklmnopqrstuvwxyz234567",
        "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz23456=",
        "Bearer bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
    ],
)
def test_malformed_api_keys_are_refused(presented: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        parse_api_key(presented)
    assert caught.value.reason == "bad_api_key_format"


def test_parse_accepts_the_canonical_shape() -> None:
    key = "bp_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567"
    assert parse_api_key(key) == ("0123456789abcdef", "abcdefghijklmnopqrstuvwxyz234567")


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(InvalidToken):
        parse_api_key(None)  # type: ignore[arg-type]


def test_api_key_digest_is_a_keyed_hmac() -> None:
    parts = new_api_key()
    digest = api_key_digest(parts.secret, "server-secret")
    assert len(digest) == 64
    assert digest == api_key_digest(parts.secret, "server-secret")
    assert digest != api_key_digest(parts.secret, "another-secret")
    assert digest != hashlib.sha256(parts.secret.encode()).hexdigest()
    assert verify_api_key_digest(parts.secret, "server-secret", digest)
    assert not verify_api_key_digest(parts.secret, "another-secret", digest)
    assert not verify_api_key_digest(new_api_key().secret, "server-secret", digest)
    assert not verify_api_key_digest(parts.secret, "server-secret", digest[:-1])
    assert not verify_api_key_digest(parts.secret, "server-secret", "")
    assert not verify_api_key_digest(parts.secret, "server-secret", "é" * 64)
    with pytest.raises(ValueError, match="server_secret"):
        api_key_digest(parts.secret, "")


def test_invalid_token_message_never_contains_the_token(service: TokenService) -> None:
    token = issue(service)
    with pytest.raises(InvalidToken) as caught:
        service.verify_access_token(token, now=NOW + 10 * TTL)
    assert token not in str(caught.value)
    assert token.split(".")[1] not in str(caught.value)


def test_repeated_verification_reuses_the_signature_check(
    service: TokenService, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue(service)
    first = service.verify_access_token(token, now=NOW)
    checks: list[Any] = []
    original = jws.validate_compact

    def counting(*args: Any, **kwargs: Any) -> Any:
        checks.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(jws, "validate_compact", counting)  # the signature check
    assert service.verify_access_token(token, now=NOW + 10) == first
    assert checks == []
    # Expiry is still enforced on a cached token, and revocation is still asked.
    with pytest.raises(InvalidToken) as expired:
        service.verify_access_token(token, now=NOW + 10_000)
    assert expired.value.reason == "expired"
    with pytest.raises(InvalidToken) as revoked:
        service.verify_access_token(issue(service), now=NOW, is_revoked=lambda jti: True)
    assert revoked.value.reason == "revoked"
    assert len(checks) == 1  # a token not seen before is checked
    # A different (tampered) text is never served from the cache.
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        service.verify_access_token(tampered, now=NOW)


def test_a_new_keyring_clears_verified_tokens(service: TokenService) -> None:
    token = issue(service)
    service.verify_access_token(token, now=NOW)
    service.update_keyring(Keyring.generate(NOW))  # the signing key is gone entirely
    with pytest.raises(InvalidToken) as info:
        service.verify_access_token(token, now=NOW)
    assert info.value.reason == "unknown_kid"
