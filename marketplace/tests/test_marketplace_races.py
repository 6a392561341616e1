"""The same row at once: operators deciding one submission together (exactly one decision
wins, the rest are 409), and one tenant installing one listing from several requests (one
install, one model). On PostgreSQL only: SQLite serialises writers anyway."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import (
    LISTING,
    PUBLISHER,
    REVIEW,
    base_environ,
    bearer,
    iris_artifact,
    key_body,
    version_body,
)

from backplane.testing import invoke_cli, seed_tenant

pytestmark = pytest.mark.postgres
LISTINGS = "/api/marketplace/listings"
INSTALLS = "/api/marketplace/installs"


@pytest.fixture
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return base_environ(tmp_path) | request.getfixturevalue("backplane_postgres_database")


def test_concurrent_applications_decisions_and_installs(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client

    def apply_once(index: int) -> int:
        body = {"display_name": f"Acme Models {index}"}
        return int(client.post(PUBLISHER, json=body).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        applications = set(pool.map(apply_once, range(6)))
    assert applications <= {201, 409}, applications  # amendments of one application, or 409
    applied = client.get(PUBLISHER).json()
    assert applied["state"] == "pending"
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=backplane_environ).exit_code == 0
    session = bearer(client, ops)

    def approve_publisher(_: int) -> int:
        url = f"{REVIEW}/publishers/{applied['id']}/approve"
        return int(client.post(url, json={}, headers=session).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(approve_publisher, range(6)))
    assert statuses == [200] + [409] * 5

    key = Ed25519PrivateKey.generate()
    assert client.post(f"{PUBLISHER}/keys", json=key_body(key, applied["id"])).status_code == 201
    listing = client.post(LISTINGS, json=LISTING).json()
    version = client.post(
        f"{LISTINGS}/{listing['id']}/versions", json=version_body(key, iris_artifact())
    ).json()

    decisions = ["approve", "reject", "request-changes", "approve", "reject", "approve"]

    def decide(decision: str) -> int:
        url = f"{REVIEW}/versions/{version['id']}/{decision}"
        return int(client.post(url, json={"reason": "r"}, headers=session).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(decide, decisions))
    assert outcomes == [200] + [409] * 5
    state = client.get(f"{LISTINGS}/mine").json()[0]["versions"][0]["state"]
    if state != "approved":  # another decision won: approve a fresh version to install
        again = client.post(
            f"{LISTINGS}/{listing['id']}/versions",
            json=version_body(key, iris_artifact(), version="2"),
        ).json()
        url = f"{REVIEW}/versions/{again['id']}/approve"
        assert client.post(url, json={}, headers=session).status_code == 200

    consumer = seed_tenant(backplane_app, "consumer")

    def install(index: int) -> int:
        body = {"listing_id": listing["id"], "name": f"species{index}"}
        return int(client.post(INSTALLS, json=body, headers=consumer.headers).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        installed = sorted(pool.map(install, range(6)))
    assert installed == [201] + [409] * 5
    assert len(client.get(INSTALLS, headers=consumer.headers).json()) == 1
    models = client.get("/api/models", headers=consumer.headers).json()
    assert len([m for m in models if m["source"] == "marketplace"]) == 1
    assert (
        client.get("/api/marketplace/catalog", headers=consumer.headers).json()[0]["installs"] == 1
    )
