"""Federation on one deployment (in process): what the signed catalog holds and who may
fetch what, the publisher's opt-in, the operators' subscription routes and their refusals."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import (
    BASE,
    FEDERATION,
    base_environ,
    bearer,
    environ_for,
    federated_market,
    iris_artifact,
    iris_examples,
    public_text,
    version_body,
)

from backplane.testing import audit_trail, invoke_cli, run_in_tenant, seed_tenant
from backplane_marketplace import signing
from backplane_marketplace.federation import CATALOG_DOMAIN, SIGNATURE_HEADER


@pytest.fixture
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """SQLite, or PostgreSQL where a test is parametrised with it (``indirect``)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return base_environ(tmp_path)
    return environ_for(request, tmp_path)


def verified_catalog(client: Any) -> dict[str, Any]:
    """The catalog, its signature checked with the key the key route shows."""
    key = client.get(f"{FEDERATION}/key", headers={"Authorization": ""}).json()
    answer = client.get(f"{FEDERATION}/catalog", headers={"Authorization": ""})
    assert answer.status_code == 200, answer.text
    raw = base64.b64decode(answer.headers[SIGNATURE_HEADER])
    signing.public_key(key["public_key"]).verify(raw, CATALOG_DOMAIN + answer.content)
    body: dict[str, Any] = answer.json()
    assert body["key_fingerprint"] == key["fingerprint"]
    return body


def test_the_catalog_is_signed_and_holds_only_opted_in_approved_versions(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    market = federated_market(backplane_app, client, backplane_environ)
    catalog = verified_catalog(client)
    assert [listing["slug"] for listing in catalog["listings"]] == ["iris-federated"]
    [version] = catalog["listings"][0]["versions"]
    artifact = iris_artifact()
    sha = hashlib.sha256(artifact).hexdigest()
    assert version["sha256"] == sha
    assert version["public_key"] == public_text(market["key"])
    signing.verify(version["public_key"], version["signature"], signing.artifact_message(sha))

    # A version in review is not in it; the artifact route serves only catalogued digests.
    body = version_body(market["key"], artifact, "2.0.0")
    pending = client.post(f"{BASE}/listings/{market['iris-federated']}/versions", json=body)
    assert pending.status_code == 201, pending.text
    assert [v["version"] for v in verified_catalog(client)["listings"][0]["versions"]] == ["1.0.0"]
    fetched = client.get(f"{FEDERATION}/artifacts/{sha}", headers={"Authorization": ""})
    assert fetched.status_code == 200
    assert fetched.content == artifact
    for bad in ("0" * 64, "not-a-digest", sha.upper()):
        assert client.get(f"{FEDERATION}/artifacts/{bad}").status_code == 404

    # Opting out empties the catalog and closes the artifact; audited.
    out = client.post(
        f"{BASE}/listings/{market['iris-federated']}/federation", json={"federated": False}
    )
    assert out.status_code == 200
    assert out.json()["federated"] is False
    assert verified_catalog(client)["listings"] == []
    assert client.get(f"{FEDERATION}/artifacts/{sha}").status_code == 404
    assert audit_trail(backplane_app, "test-tenant", "marketplace.listing_federation")


def test_only_the_listing_s_publisher_opts_it_in(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    market = federated_market(backplane_app, backplane_client, backplane_environ)
    other = seed_tenant(backplane_app, "other")
    answer = backplane_client.post(
        f"{BASE}/listings/{market['iris-local']}/federation",
        json={"federated": True},
        headers=other.headers,
    )
    assert answer.status_code == 404  # not its publisher (it has none)
    bad = backplane_client.post(
        f"{BASE}/listings/{market['iris-local']}/federation", json={"federated": "yes"}
    )
    assert bad.status_code == 400


def test_the_cli_shows_the_key_the_route_serves(
    backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    shown = invoke_cli("marketplace", "federation", "key", environ=backplane_environ)
    assert shown.exit_code == 0, shown.output
    key = backplane_client.get(f"{FEDERATION}/key").json()
    assert f"public key:  {key['public_key']}" in shown.output
    assert f"fingerprint: {key['fingerprint']}" in shown.output


def test_subscriptions_are_for_platform_operators_and_refuse_bad_input(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    key = public_text(Ed25519PrivateKey.generate())
    body = {"url": "http://127.0.0.1:9", "public_key": key}
    assert client.post(f"{FEDERATION}/subscriptions", json=body).status_code == 403
    assert client.get(f"{FEDERATION}/subscriptions").status_code == 403
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=backplane_environ).exit_code == 0
    session = bearer(client, ops)
    for wrong in (
        {"url": "ftp://example.org", "public_key": key},
        {"url": "http://127.0.0.1:9", "public_key": "short"},
        {"url": "http://127.0.0.1:9", "public_key": "!" * 44},
        {"url": "http://127.0.0.1:9"},
    ):
        answer = client.post(f"{FEDERATION}/subscriptions", json=wrong, headers=session)
        assert 400 <= answer.status_code < 500, (wrong, answer.text)
    # Nothing listens on port 9: a clear 502, nothing stored.
    down = client.post(f"{FEDERATION}/subscriptions", json=body, headers=session)
    assert down.status_code == 502, down.text
    assert "could not fetch" in down.json()["detail"]
    assert client.get(f"{FEDERATION}/subscriptions", headers=session).json() == []
    # Tenants see no listings, and cannot install what does not exist.
    assert client.get(f"{FEDERATION}/listings").json() == []
    missing = client.post(
        f"{FEDERATION}/installs",
        json={"listing_id": "00000000-0000-0000-0000-000000000001", "name": "x"},
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "backplane_environ",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_a_subscription_to_itself_works_in_process(
    backplane_app: Any,
    backplane_client: Any,
    backplane_environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The subscribing side against this app's own catalog, through httpx's ASGI transport
    (the two-process test is test_marketplace_federation_served): install, call, uninstall,
    isolation and the audit trail."""
    client = backplane_client
    market = federated_market(backplane_app, client, backplane_environ)
    key = client.get(f"{FEDERATION}/key").json()["public_key"]

    class Local(httpx.AsyncClient):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.pop("trust_env", None)
            super().__init__(transport=httpx.ASGITransport(app=backplane_app), **kwargs)

    monkeypatch.setattr("backplane_marketplace.federation.httpx.AsyncClient", Local)
    session = market["ops_session"]
    made = client.post(
        f"{FEDERATION}/subscriptions",
        json={"url": "http://peer.test/", "public_key": key},
        headers=session,
    )
    assert made.status_code == 201, made.text
    assert made.json()["url"] == "http://peer.test"
    assert made.json()["listings"] == 1
    again = client.post(
        f"{FEDERATION}/subscriptions",
        json={"url": "http://peer.test", "public_key": key},
        headers=session,
    )
    assert again.status_code == 409
    assert audit_trail(backplane_app, "ops", "marketplace.subscription_added")

    consumer = seed_tenant(backplane_app, "consumer")
    [listing] = client.get(f"{FEDERATION}/listings", headers=consumer.headers).json()
    assert listing["slug"] == "iris-federated"
    body = {"listing_id": listing["id"], "name": "iris"}
    installed = client.post(f"{FEDERATION}/installs", json=body, headers=consumer.headers)
    assert installed.status_code == 201, installed.text
    twice = client.post(f"{FEDERATION}/installs", json=body, headers=consumer.headers)
    assert twice.status_code == 409
    assert audit_trail(backplane_app, "consumer", "marketplace.federated_installed")

    example = iris_examples(1)[0]
    tensor = {"name": "float_input", "datatype": "FP32", "shape": [1, 4]}
    infer = {"inputs": [tensor | {"data": example["inputs"]["float_input"][0]}]}
    called = client.post("/v2/models/iris/infer", json=infer, headers=consumer.headers)
    assert called.status_code == 200, called.text
    # Another tenant neither sees the install nor can call or remove it.
    other = seed_tenant(backplane_app, "other")
    assert client.get(f"{FEDERATION}/installs", headers=other.headers).json() == []
    assert (
        client.post("/v2/models/iris/infer", json=infer, headers=other.headers).status_code == 404
    )
    install_id = installed.json()["id"]
    assert (
        client.delete(f"{FEDERATION}/installs/{install_id}", headers=other.headers).status_code
        == 404
    )
    assert (
        client.delete(f"{FEDERATION}/installs/{install_id}", headers=consumer.headers).status_code
        == 204
    )
    assert (
        client.post("/v2/models/iris/infer", json=infer, headers=consumer.headers).status_code
        == 404
    )

    sub_id = made.json()["id"]
    refreshed = client.post(f"{FEDERATION}/subscriptions/{sub_id}/refresh", headers=session)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["issued_at"] > made.json()["issued_at"]

    # A catalog issued before the one accepted last (a replay) is refused on refresh.
    async def accepted_tomorrow(kernel: Any) -> None:
        from datetime import UTC, datetime, timedelta

        from sqlalchemy import update

        from backplane_marketplace.federation_models import Subscription

        tomorrow = datetime.now(UTC) + timedelta(days=1)
        await kernel.db.execute(update(Subscription).values(issued_at=tomorrow))

    run_in_tenant(backplane_app, "ops", accepted_tomorrow, plugin="marketplace")
    replayed = client.post(f"{FEDERATION}/subscriptions/{sub_id}/refresh", headers=session)
    assert replayed.status_code == 502
    assert "replayed catalog is refused" in replayed.json()["detail"]
    gone = client.delete(f"{FEDERATION}/subscriptions/{sub_id}", headers=session)
    assert gone.status_code == 204
    assert client.get(f"{FEDERATION}/listings", headers=consumer.headers).json() == []
