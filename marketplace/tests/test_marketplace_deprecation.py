"""Deprecating a version as of a date over HTTP: announced ahead, existing installs see the
notice; from the date no new installs of it (the latest version not deprecated is picked
instead), while existing installs keep calling it; final once the date has passed; only the
listing's publisher may do it; bad input is a clear 4xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from marketplace_helpers import (
    environ_for,
    iris_artifact,
    iris_examples,
    priced_market,
    version_body,
)

from backplane.testing import audit_trail, seed_tenant

INSTALLS = "/api/marketplace/installs"
LISTINGS = "/api/marketplace/listings"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def v2_body() -> dict[str, Any]:
    features = iris_examples(1)[0]["inputs"]["float_input"][0]
    return {
        "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": features}]
    }


def test_deprecation_refuses_new_installs_after_its_date_and_keeps_calls_working(
    backplane_app: Any,
    backplane_client: Any,
    backplane_tenant: Any,
    backplane_environ: dict[str, str],
) -> None:
    client = backplane_client  # the publisher's tenant
    market = priced_market(backplane_app, client, backplane_environ)
    listing_id = market["per_request"]
    mine = {entry["id"]: entry for entry in client.get(f"{LISTINGS}/mine").json()}
    old = mine[listing_id]["versions"][0]
    url = f"{LISTINGS}/{listing_id}/versions/{old['id']}/deprecation"
    first, second = seed_tenant(backplane_app, "first"), seed_tenant(backplane_app, "second")
    made = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "species"}, headers=first.headers
    )
    assert made.status_code == 201, made.text
    assert (made.json()["deprecated_at"], made.json()["notice"]) == (None, None)

    # Bad input and the wrong caller.
    naive = client.put(url, json={"as_of": "2030-01-01T00:00:00"})
    assert naive.status_code == 422, naive.text
    assert "time zone" in naive.json()["detail"]
    assert client.put(url, json={"as_of": "soon"}).status_code == 400
    assert client.put(url, json={}).status_code == 400
    soon = datetime.now(UTC) + timedelta(days=30)
    body = {"as_of": soon.isoformat(), "note": "use 1.1.0"}
    assert client.put(url, json=body, headers=first.headers).status_code == 404  # no publisher
    other = f"{LISTINGS}/{market['per_row']}/versions/{old['id']}/deprecation"
    assert client.put(other, json=body).status_code == 404  # not that listing's version

    # Announced ahead: the install shows the date and the note; installs still work.
    announced = client.put(url, json=body)
    assert announced.status_code == 200, announced.text
    assert announced.json()["deprecation_note"] == "use 1.1.0"
    (shown,) = client.get(INSTALLS, headers=first.headers).json()
    assert shown["deprecated_at"] is not None
    assert "will be deprecated on" in shown["notice"]
    assert "use 1.1.0" in shown["notice"]
    early = client.post(
        INSTALLS,
        json={"listing_id": listing_id, "name": "early", "version": old["version"]},
        headers=second.headers,
    )
    assert early.status_code == 201, early.text
    assert (
        client.delete(f"{INSTALLS}/{early.json()['id']}", headers=second.headers).status_code == 204
    )
    # A deprecation still to come may be withdrawn and set again.
    withdrawn = client.delete(url)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["deprecated_at"] is None
    assert client.get(INSTALLS, headers=first.headers).json()[0]["notice"] is None

    # A newer version, approved; then the old one deprecated as of now.
    newer = client.post(
        f"{LISTINGS}/{listing_id}/versions",
        json=version_body(
            market["key"],
            iris_artifact(),
            "1.1.0",
            pricing={"model": "per_request", "unit_price": 7},
        ),
    )
    assert newer.status_code == 201, newer.text
    approve = f"/api/marketplace/review/versions/{newer.json()['id']}/approve"
    assert client.post(approve, json={}, headers=market["ops_session"]).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    done = client.put(url, json={"as_of": past.isoformat(), "note": "use 1.1.0"})
    assert done.status_code == 200, done.text

    # From the date: the old version takes no new installs ...
    refused = client.post(
        INSTALLS,
        json={"listing_id": listing_id, "name": "late", "version": old["version"]},
        headers=second.headers,
    )
    assert refused.status_code == 409, refused.text
    assert "deprecated since" in refused.json()["detail"]
    # ... an install naming no version gets the latest one not deprecated ...
    latest = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "late"}, headers=second.headers
    )
    assert latest.status_code == 201, latest.text
    assert (latest.json()["version"], latest.json()["notice"]) == ("1.1.0", None)
    # ... and the existing install keeps calling the old version, with the notice.
    called = client.post("/v2/models/species/infer", json=v2_body(), headers=first.headers)
    assert called.status_code == 200, called.text
    (shown,) = client.get(INSTALLS, headers=first.headers).json()
    assert shown["version"] == old["version"]
    assert "is deprecated since" in shown["notice"]
    # The catalog shows it; the date that has passed is final.
    catalog = client.get("/api/marketplace/catalog", headers=second.headers).json()
    versions = {v["version"]: v for e in catalog if e["id"] == listing_id for v in e["versions"]}
    assert versions[old["version"]]["deprecated_at"] is not None
    assert versions["1.1.0"]["deprecated_at"] is None
    assert client.put(url, json=body).status_code == 409
    assert client.delete(url).status_code == 409

    # Every approved version deprecated: no install at all.
    url_new = f"{LISTINGS}/{listing_id}/versions/{newer.json()['id']}/deprecation"
    assert client.put(url_new, json={"as_of": past.isoformat()}).status_code == 200
    third = seed_tenant(backplane_app, "third")
    none_left = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "x"}, headers=third.headers
    )
    assert none_left.status_code == 409, none_left.text
    assert "every approved version is deprecated" in none_left.json()["detail"]
    actions = [entry.action for entry in audit_trail(backplane_app, backplane_tenant)]
    assert actions.count("marketplace.version_deprecated") == 3  # refusals are not audited
    assert actions.count("marketplace.version_undeprecated") == 1


def test_only_approved_versions_are_deprecated(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ)
    listing_id = market["per_row"]
    pending = client.post(
        f"{LISTINGS}/{listing_id}/versions",
        json=version_body(market["key"], iris_artifact(), "3.0.0"),
    )
    assert pending.status_code == 201, pending.text
    url = f"{LISTINGS}/{listing_id}/versions/{pending.json()['id']}/deprecation"
    refused = client.put(url, json={"as_of": datetime.now(UTC).isoformat()})
    assert refused.status_code == 409
    assert "in_review" in refused.json()["detail"]
