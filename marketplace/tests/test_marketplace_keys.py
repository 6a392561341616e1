"""Publishers' Ed25519 signing keys: registered with a proof of possession once approved,
rotated (the old key signs nothing new), revoked; bad keys and proofs are clear 4xx; each
step audited; another tenant cannot touch them."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import PUBLISHER, REVIEW, apply, b64, bearer, key_body, public_text

from backplane.testing import audit_trail, invoke_cli, seed_tenant

KEYS = f"{PUBLISHER}/keys"


@pytest.fixture
def approved(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> dict[str, Any]:
    """The test tenant applied and a platform operator approved it."""
    applied = apply(backplane_client, {}, "Acme Models")
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    granted = invoke_cli("operators", "grant", ops.email, environ=backplane_environ)
    assert granted.exit_code == 0, granted.output
    # A fresh login: the membership (and operator flag) of this user was never cached.
    session = bearer(backplane_client, ops)
    done = backplane_client.post(
        f"{REVIEW}/publishers/{applied['id']}/approve", json={}, headers=session
    )
    assert done.status_code == 200, done.text
    return applied


def test_keys_need_an_approved_publisher(backplane_client: Any) -> None:
    applied = apply(backplane_client, {}, "Acme Models")
    early = backplane_client.post(KEYS, json=key_body(Ed25519PrivateKey.generate(), applied["id"]))
    assert early.status_code == 409
    assert "pending" in early.json()["detail"]


def test_register_rotate_revoke(
    backplane_app: Any, backplane_client: Any, backplane_tenant: Any, approved: dict[str, Any]
) -> None:
    client = backplane_client
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    made = client.post(KEYS, json=key_body(first, approved["id"]))
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["public_key"] == public_text(first)
    assert len(key["fingerprint"]) == 64

    again = client.post(KEYS, json=key_body(first, approved["id"]))
    assert again.status_code == 409

    rotated = client.post(f"{KEYS}/{key['id']}/rotate", json=key_body(second, approved["id"]))
    assert rotated.status_code == 201, rotated.text
    keys = {k["id"]: k for k in client.get(PUBLISHER).json()["keys"]}
    assert keys[key["id"]]["retired_at"] is not None
    assert keys[key["id"]]["revoked_at"] is None
    assert keys[rotated.json()["id"]]["retired_at"] is None
    assert (
        client.post(f"{KEYS}/{key['id']}/rotate", json=key_body(first, approved["id"])).status_code
        == 409
    )

    revoked = client.post(f"{KEYS}/{rotated.json()['id']}/revoke")
    assert revoked.status_code == 201, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert client.post(f"{KEYS}/{rotated.json()['id']}/revoke").status_code == 409

    actions = [
        e.action
        for e in audit_trail(backplane_app, backplane_tenant)
        if e.action.startswith("marketplace.key")
    ]
    assert actions == [
        "marketplace.key_registered",
        "marketplace.key_rotated",
        "marketplace.key_revoked",
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"public_key": "not base64!", "proof": "AAAA"}, "not base64"),
        ({"public_key": b64(b"short"), "proof": b64(bytes(64))}, "32 bytes"),
        ("wrong-proof", "does not verify"),
        ("proof-for-another-publisher", "does not verify"),
        ("short-proof", "64 bytes"),
    ],
)
def test_bad_keys_and_proofs_are_refused(
    backplane_client: Any, approved: dict[str, Any], body: Any, reason: str
) -> None:
    key = Ed25519PrivateKey.generate()
    if body == "wrong-proof":
        body = key_body(key, approved["id"]) | {"proof": b64(key.sign(b"something else"))}
    elif body == "proof-for-another-publisher":
        body = key_body(key, "00000000-0000-4000-8000-000000000000")
    elif body == "short-proof":
        body = key_body(key, approved["id"]) | {"proof": b64(b"x" * 10)}
    refused = backplane_client.post(KEYS, json=body)
    assert refused.status_code == 422, refused.text
    assert reason in refused.json()["detail"]
    assert backplane_client.get(PUBLISHER).json()["keys"] == []


def test_active_keys_are_limited(backplane_client: Any, approved: dict[str, Any]) -> None:
    for _ in range(5):  # max_active_keys
        made = backplane_client.post(
            KEYS, json=key_body(Ed25519PrivateKey.generate(), approved["id"])
        )
        assert made.status_code == 201, made.text
    over = backplane_client.post(KEYS, json=key_body(Ed25519PrivateKey.generate(), approved["id"]))
    assert over.status_code == 409
    assert "max_active_keys" in over.json()["detail"]


def test_another_tenant_cannot_touch_a_publishers_keys(
    backplane_app: Any, backplane_client: Any, approved: dict[str, Any]
) -> None:
    made = backplane_client.post(KEYS, json=key_body(Ed25519PrivateKey.generate(), approved["id"]))
    key_id = made.json()["id"]
    other = seed_tenant(backplane_app, "other")
    seen = backplane_client.get(PUBLISHER, headers=other.headers)
    assert seen.status_code == 200
    assert seen.json() is None
    for action in ("revoke", "rotate"):
        body = (
            key_body(Ed25519PrivateKey.generate(), approved["id"]) if action == "rotate" else None
        )
        tried = backplane_client.post(f"{KEYS}/{key_id}/{action}", json=body, headers=other.headers)
        assert tried.status_code == 404, tried.text
    # Applying as another tenant makes another publisher, it never adopts this one.
    theirs = apply(backplane_client, other.headers, "Other Models")
    assert theirs["id"] != approved["id"]
    tried = backplane_client.post(f"{KEYS}/{key_id}/revoke", headers=other.headers)
    assert tried.status_code == 404
    assert backplane_client.get(PUBLISHER).json()["keys"][0]["revoked_at"] is None


def test_members_cannot_manage_keys(backplane_client_as: Any, approved: dict[str, Any]) -> None:
    member = backplane_client_as("member")
    refused = member.post(KEYS, json=key_body(Ed25519PrivateKey.generate(), approved["id"]))
    assert refused.status_code == 403
    assert member.get(PUBLISHER).status_code == 200
