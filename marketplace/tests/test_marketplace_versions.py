"""Listings and versions: a signed artifact passes the automatic checks (signature, the
kernel's validation, examples compared, latency measured) and waits for the operators'
review; tampering, revoked keys and disagreeing examples are refused with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import (
    LISTING,
    PUBLISHER,
    REVIEW,
    apply,
    bearer,
    environ_for,
    iris_artifact,
    iris_examples,
    key_body,
    version_body,
)

from backplane.testing import audit_trail, invoke_cli, seed_tenant

LISTINGS = "/api/marketplace/listings"
CATALOG = "/api/marketplace/catalog"
INSTALLS = "/api/marketplace/installs"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Every test here on SQLite and on PostgreSQL (row-level security on installs, the app's
    role limited as in production)."""
    return environ_for(request, tmp_path)


@pytest.fixture
def publishing(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> dict[str, Any]:
    """An approved publisher with a signing key and a listing, and an operator's session."""
    client = backplane_client
    applied = apply(client, {}, "Acme Models")
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=backplane_environ).exit_code == 0
    ops_session = bearer(client, ops)
    approve = f"{REVIEW}/publishers/{applied['id']}/approve"
    assert client.post(approve, json={}, headers=ops_session).status_code == 200
    key = Ed25519PrivateKey.generate()
    registered = client.post(f"{PUBLISHER}/keys", json=key_body(key, applied["id"]))
    assert registered.status_code == 201, registered.text
    listing = client.post(LISTINGS, json=LISTING)
    assert listing.status_code == 201, listing.text
    return {
        "key": key,
        "key_id": registered.json()["id"],
        "listing": listing.json(),
        "ops": ops,
        "ops_session": ops_session,
    }


def test_a_version_is_checked_then_reviewed(
    backplane_app: Any, backplane_client: Any, backplane_tenant: Any, publishing: dict[str, Any]
) -> None:
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    submitted = client.post(
        versions,
        json=version_body(publishing["key"], iris_artifact(), claimed_metrics={"accuracy": 0.97}),
    )
    assert submitted.status_code == 201, submitted.text
    version = submitted.json()
    assert version["state"] == "in_review"
    assert [t["name"] for t in version["inputs"]] == ["float_input"]
    assert {t["name"] for t in version["outputs"]} == {"label", "probabilities"}
    report = version["checks"]
    assert report["examples_passed"] == 2
    assert report["latency_runs"] == 50
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    # The memory figure: what the loaded session adds (the kernel's upload trial); the
    # iris model's weights are tiny, the session's own cost is some MiB.
    assert 0 < report["memory_bytes"] < 200 * 1024 * 1024

    # Versions are immutable.
    again = client.post(versions, json=version_body(publishing["key"], iris_artifact()))
    assert again.status_code == 409

    ops_session = publishing["ops_session"]
    queue = client.get(f"{REVIEW}/versions", headers=ops_session)
    assert [v["id"] for v in queue.json()] == [version["id"]]
    assert client.get(f"{REVIEW}/versions").status_code == 403  # the publisher is no operator
    changes = client.post(
        f"{REVIEW}/versions/{version['id']}/request-changes",
        json={"reason": "document the training data"},
        headers=ops_session,
    )
    assert changes.status_code == 200, changes.text
    mine = client.get(f"{LISTINGS}/mine").json()
    assert [(v["version"], v["state"], v["review_reason"]) for v in mine[0]["versions"]] == [
        ("1.0.0", "changes_requested", "document the training data")
    ]

    second = client.post(
        versions, json=version_body(publishing["key"], iris_artifact(), version="1.0.1")
    )
    assert second.status_code == 201, second.text
    approved = client.post(
        f"{REVIEW}/versions/{second.json()['id']}/approve", json={}, headers=ops_session
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    twice = client.post(
        f"{REVIEW}/versions/{second.json()['id']}/reject", json={"reason": "x"}, headers=ops_session
    )
    assert twice.status_code == 409

    publisher_actions = [
        e.action
        for e in audit_trail(backplane_app, backplane_tenant)
        if e.action.startswith("marketplace.")
    ]
    assert publisher_actions.count("marketplace.version_submitted") == 2
    assert "marketplace.listing_created" in publisher_actions
    operator_actions = [
        e.action
        for e in audit_trail(backplane_app, publishing["ops"])
        if e.action.startswith("marketplace.version")
    ]
    assert operator_actions == [
        "marketplace.version_changes_requested",
        "marketplace.version_approved",
    ]


def test_tampering_revoked_keys_and_wrong_examples_are_refused(
    backplane_client: Any, publishing: dict[str, Any]
) -> None:
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    artifact = iris_artifact()

    # Changed after signing: one byte of the artifact differs from what was signed.
    body = version_body(publishing["key"], artifact)
    tampered = bytearray(artifact)
    tampered[-1] ^= 0x01
    import base64

    body["artifact"] = base64.b64encode(bytes(tampered)).decode()
    refused = client.post(versions, json=body)
    assert refused.status_code == 422
    assert "changed after signing" in refused.json()["detail"]

    # Signed by a key that is not the publisher's.
    stranger = client.post(versions, json=version_body(Ed25519PrivateKey.generate(), artifact))
    assert stranger.status_code == 422
    assert "no active key" in stranger.json()["detail"]

    # Examples that disagree with what the model outputs.
    wrong = iris_examples()
    wrong[1]["outputs"]["label"] = [(wrong[1]["outputs"]["label"][0] + 1) % 3]
    disagrees = client.post(
        versions, json=version_body(publishing["key"], artifact, examples=wrong)
    )
    assert disagrees.status_code == 422
    assert "example 1, output 'label'" in disagrees.json()["detail"]
    off = iris_examples()
    off[0]["outputs"]["probabilities"][0][0] += 0.01
    drifted = client.post(versions, json=version_body(publishing["key"], artifact, examples=off))
    assert drifted.status_code == 422
    assert "example 0, output 'probabilities'" in drifted.json()["detail"]

    # Not an ONNX model at all (but validly signed): the kernel's validation refuses it.
    junk = b"not a model" * 10
    invalid = client.post(versions, json=version_body(publishing["key"], junk))
    assert invalid.status_code == 422
    assert "failed validation" in invalid.json()["detail"]

    # A revoked key's signature no longer verifies.
    revoked = client.post(f"{PUBLISHER}/keys/{publishing['key_id']}/revoke")
    assert revoked.status_code == 201, revoked.text
    late = client.post(versions, json=version_body(publishing["key"], artifact))
    assert late.status_code == 422
    assert "no active signing key" in late.json()["detail"]

    # Nothing of the refused submissions was recorded.
    assert client.get(f"{LISTINGS}/mine").json()[0]["versions"] == []


def test_listings_need_an_approved_publisher_and_a_free_slug(
    backplane_app: Any, backplane_client: Any, publishing: dict[str, Any]
) -> None:
    taken = backplane_client.post(LISTINGS, json=LISTING)
    assert taken.status_code == 409
    other = seed_tenant(backplane_app, "other")
    apply(backplane_client, other.headers, "Other")
    pending = backplane_client.post(
        LISTINGS, json=LISTING | {"slug": "other-iris"}, headers=other.headers
    )
    assert pending.status_code == 409
    assert "pending" in pending.json()["detail"]
    # Another tenant cannot add versions to this publisher's listing.
    theirs = backplane_client.post(
        f"{LISTINGS}/{publishing['listing']['id']}/versions",
        json=version_body(publishing["key"], iris_artifact()),
        headers=other.headers,
    )
    assert theirs.status_code == 404


def test_a_consumer_finds_installs_calls_and_uninstalls(
    backplane_app: Any, backplane_client: Any, publishing: dict[str, Any]
) -> None:
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    submitted = client.post(versions, json=version_body(publishing["key"], iris_artifact()))
    assert submitted.status_code == 201, submitted.text
    consumer = seed_tenant(backplane_app, "consumer")
    as_consumer = consumer.headers
    # Not in the catalog until an operator approves the version.
    assert client.get(CATALOG, headers=as_consumer).json() == []
    listing_id = publishing["listing"]["id"]
    early = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "species"}, headers=as_consumer
    )
    assert early.status_code == 404
    approve = f"{REVIEW}/versions/{submitted.json()['id']}/approve"
    assert client.post(approve, json={}, headers=publishing["ops_session"]).status_code == 200

    found = client.get(CATALOG, params={"q": "IRIS", "tag": "demo"}, headers=as_consumer).json()
    assert [(f["slug"], [v["version"] for v in f["versions"]]) for f in found] == [
        ("iris-species", ["1.0.0"])
    ]
    # The listing shows the automatic checks' latency and memory figures to consumers.
    shown = found[0]["versions"][0]["checks"]
    assert shown["p50_ms"] > 0
    assert shown["memory_bytes"] > 0
    assert client.get(CATALOG, params={"tag": "nlp"}, headers=as_consumer).json() == []
    assert client.get(CATALOG, params={"task": "regression"}, headers=as_consumer).json() == []

    made = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "species"}, headers=as_consumer
    )
    assert made.status_code == 201, made.text
    assert made.json()["version"] == "1.0.0"
    again = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "other"}, headers=as_consumer
    )
    assert again.status_code == 409
    assert client.get(CATALOG, headers=as_consumer).json()[0]["installs"] == 1

    rows = iris_examples(1)[0]
    body = {
        "inputs": [
            {
                "name": "float_input",
                "datatype": "FP32",
                "shape": [1, 4],
                "data": rows["inputs"]["float_input"][0],
            }
        ]
    }
    called = client.post("/v2/models/species/infer", json=body, headers=as_consumer)
    assert called.status_code == 200, called.text
    label = next(o for o in called.json()["outputs"] if o["name"] == "label")
    assert label["data"] == rows["outputs"]["label"]
    # The publisher tenant has no model of that name: the install is the consumer's only.
    assert client.post("/v2/models/species/infer", json=body).status_code == 404
    listed = client.get("/api/models", headers=as_consumer).json()
    assert any(m["name"] == "species" and m["source"] == "marketplace" for m in listed)

    # Another tenant neither sees nor removes the consumer's install.
    assert client.get(INSTALLS).json() == []
    assert client.delete(f"{INSTALLS}/{made.json()['id']}").status_code == 404
    removed = client.delete(f"{INSTALLS}/{made.json()['id']}", headers=as_consumer)
    assert removed.status_code == 204, removed.text
    gone = client.post("/v2/models/species/infer", json=body, headers=as_consumer)
    assert gone.status_code == 404
    assert client.get(INSTALLS, headers=as_consumer).json() == []
    assert client.get(CATALOG, headers=as_consumer).json()[0]["installs"] == 0


def test_a_revoked_keys_version_is_not_installed(
    backplane_app: Any, backplane_client: Any, publishing: dict[str, Any]
) -> None:
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    submitted = client.post(versions, json=version_body(publishing["key"], iris_artifact()))
    approve = f"{REVIEW}/versions/{submitted.json()['id']}/approve"
    assert client.post(approve, json={}, headers=publishing["ops_session"]).status_code == 200
    assert client.post(f"{PUBLISHER}/keys/{publishing['key_id']}/revoke").status_code == 201
    consumer = seed_tenant(backplane_app, "consumer")
    refused = client.post(
        INSTALLS,
        json={"listing_id": publishing["listing"]["id"], "name": "species"},
        headers=consumer.headers,
    )
    assert refused.status_code == 409
    assert "revoked" in refused.json()["detail"]


def test_a_versions_tariff_is_checked_fixed_and_accepted_by_the_install(
    backplane_app: Any, backplane_client: Any, publishing: dict[str, Any]
) -> None:
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    artifact = iris_artifact()
    too_dear = {"model": "per_request", "unit_price": 100_001}
    refused = client.post(
        versions, json=version_body(publishing["key"], artifact, pricing=too_dear)
    )
    assert refused.status_code == 422
    assert "max_unit_price" in refused.json()["detail"]
    free_but_priced = {"model": "free", "unit_price": 5}
    refused = client.post(
        versions, json=version_body(publishing["key"], artifact, pricing=free_but_priced)
    )
    assert refused.status_code == 422
    assert "free" in refused.json()["detail"]
    nothing = {"model": "per_row", "unit_price": 0}
    refused = client.post(versions, json=version_body(publishing["key"], artifact, pricing=nothing))
    assert refused.status_code == 422
    assert client.get(f"{LISTINGS}/mine").json()[0]["versions"] == []

    tariff = {"model": "per_row", "unit_price": 3}
    submitted = client.post(
        versions, json=version_body(publishing["key"], artifact, pricing=tariff)
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["pricing"] == {"model": "per_row", "unit_price": 3, "currency": "USD"}
    approve = f"{REVIEW}/versions/{submitted.json()['id']}/approve"
    assert client.post(approve, json={}, headers=publishing["ops_session"]).status_code == 200
    consumer = seed_tenant(backplane_app, "consumer")
    shown = client.get(CATALOG, headers=consumer.headers).json()[0]["versions"][0]["pricing"]
    assert shown == {"model": "per_row", "unit_price": 3, "currency": "USD"}
    made = client.post(
        INSTALLS,
        json={"listing_id": publishing["listing"]["id"], "name": "species"},
        headers=consumer.headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["pricing"] == shown
    assert client.get(INSTALLS, headers=consumer.headers).json()[0]["pricing"] == shown


def test_an_installed_model_is_verified_again_when_loaded(
    backplane_app: Any, backplane_client: Any, publishing: dict[str, Any]
) -> None:
    """Hook ``model_loading``: a key revoked after the install refuses the next call (and the
    metadata and readiness routes) with the reason; the consumer's own upload of the very same
    bytes, which shares the loaded session, is not the marketplace's to refuse."""
    client = backplane_client
    versions = f"{LISTINGS}/{publishing['listing']['id']}/versions"
    submitted = client.post(versions, json=version_body(publishing["key"], iris_artifact()))
    approve = f"{REVIEW}/versions/{submitted.json()['id']}/approve"
    assert client.post(approve, json={}, headers=publishing["ops_session"]).status_code == 200
    consumer = seed_tenant(backplane_app, "consumer")
    made = client.post(
        INSTALLS,
        json={"listing_id": publishing["listing"]["id"], "name": "species"},
        headers=consumer.headers,
    )
    assert made.status_code == 201, made.text
    own = client.post(
        "/api/models",
        files={"file": ("iris.onnx", iris_artifact(), "application/octet-stream")},
        data={"name": "own_iris"},
        headers=consumer.headers,
    )
    assert own.status_code == 201, own.text
    row = iris_examples(1)[0]["inputs"]["float_input"][0]
    body = {"inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": row}]}
    for name in ("species", "own_iris"):
        called = client.post(f"/v2/models/{name}/infer", json=body, headers=consumer.headers)
        assert called.status_code == 200, called.text

    revoked = client.post(f"{PUBLISHER}/keys/{publishing['key_id']}/revoke")
    assert revoked.status_code == 201, revoked.text
    refused = client.post("/v2/models/species/infer", json=body, headers=consumer.headers)
    assert refused.status_code == 409, refused.text
    reason = refused.json()["error"]
    assert "'species'" in reason, reason
    assert "revoked" in reason, reason
    for path in ("/v2/models/species", "/v2/models/species/ready"):
        assert client.get(path, headers=consumer.headers).status_code == 409
    kept = client.post("/v2/models/own_iris/infer", json=body, headers=consumer.headers)
    assert kept.status_code == 200, kept.text
