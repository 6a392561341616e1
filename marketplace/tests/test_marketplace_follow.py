"""Following installs over HTTP: an install in ``follow`` mode is told of a newly approved
version (a notice, and on the install), moves after the configured delay or at once when the
tenant accepts, keeps its name (calls keep working) and takes the new tariff; pinned installs
never move; every route is the tenant's own."""

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

from backplane.testing import close_invoice, delayed_tasks, run_in_tenant, seed_tenant

INSTALLS = "/api/marketplace/installs"
NOTICES = "/api/marketplace/notices"
LISTINGS = "/api/marketplace/listings"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path) | {
        "BACKPLANE_INFERENCE__METERING_OVERLAP_S": "0",
        # a webhook endpoint on this machine records which events the follower is sent
        "BACKPLANE_WEBHOOKS__ALLOW_HTTP": "true",
        "BACKPLANE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
    }


def as_utc(moment: datetime) -> datetime:
    """SQLite gives a stored UTC time back without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def v2_body() -> dict[str, Any]:
    features = iris_examples(1)[0]["inputs"]["float_input"][0]
    return {
        "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": features}]
    }


def check(app: Any, tenant: Any, now: datetime | None = None) -> int:
    """What the per-tenant task ``follow_latest`` runs (every ten minutes, and when a move is
    due)."""
    from backplane_marketplace.follow import sync

    return run_in_tenant(app, tenant, lambda kernel: sync(kernel, now), plugin="marketplace")


def publish(client: Any, market: dict[str, Any], listing_id: str, version: str, price: int) -> None:
    body = version_body(
        market["key"],
        iris_artifact(),
        version,
        pricing={"model": "per_request", "unit_price": price},
    )
    made = client.post(f"{LISTINGS}/{listing_id}/versions", json=body)
    assert made.status_code == 201, made.text
    approve = f"/api/marketplace/review/versions/{made.json()['id']}/approve"
    assert client.post(approve, json={}, headers=market["ops_session"]).status_code == 200


def test_following_installs_get_a_notice_then_move(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client  # the publisher's tenant
    market = priced_market(backplane_app, client, backplane_environ)
    listing_id = market["per_request"]
    follower, pinned = seed_tenant(backplane_app, "follower"), seed_tenant(backplane_app, "pinned")
    named = client.post(
        INSTALLS,
        json={"listing_id": listing_id, "name": "species", "version": "1.0.0", "mode": "follow"},
        headers=follower.headers,
    )
    assert named.status_code == 422, named.text
    bad = {"listing_id": listing_id, "name": "species", "mode": "sometimes"}
    assert client.post(INSTALLS, json=bad, headers=follower.headers).status_code == 400
    made = client.post(
        INSTALLS,
        json={"listing_id": listing_id, "name": "species", "mode": "follow"},
        headers=follower.headers,
    )
    assert made.status_code == 201, made.text
    install = made.json()
    hook = client.post(
        "/api/billing/webhooks",
        json={
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["marketplace.upgrade_pending", "marketplace.upgraded"],
        },
        headers=follower.headers,
    )
    assert hook.status_code == 201, hook.text
    deliveries = f"/api/billing/webhooks/{hook.json()['id']}/deliveries"

    def events_sent() -> list[str]:
        found = client.get(deliveries, headers=follower.headers).json()
        return sorted(d["event_type"] for d in found)

    assert (install["mode"], install["version"], install["pending_version"]) == (
        "follow",
        "1.0.0",
        None,
    )
    kept = client.post(
        INSTALLS, json={"listing_id": listing_id, "name": "species"}, headers=pinned.headers
    )
    assert kept.status_code == 201, kept.text
    assert (
        client.post(
            "/v2/models/species/infer", json=v2_body(), headers=follower.headers
        ).status_code
        == 200
    )
    assert check(backplane_app, follower) == 0
    assert client.get(NOTICES, headers=follower.headers).json() == []

    # A new version approved: the follower is told, with the new tariff and the date.
    publish(client, market, listing_id, "1.1.0", 9)
    before = datetime.now(UTC)
    for _ in range(2):  # checking twice tells once
        assert check(backplane_app, follower) == 0
        assert check(backplane_app, pinned) == 0
    (shown,) = client.get(INSTALLS, headers=follower.headers).json()
    assert (shown["version"], shown["pending_version"]) == ("1.0.0", "1.1.0")
    upgrade_at = datetime.fromisoformat(shown["upgrade_at"])
    assert before + timedelta(days=6) < upgrade_at < before + timedelta(days=8)  # default 7 days
    # the move is queued for its time (besides the ten-minute checks)
    wakes = [when for _, when in delayed_tasks(client, "marketplace.follow_latest")]
    assert as_utc(upgrade_at) + timedelta(seconds=1) in wakes
    (notice,) = client.get(NOTICES, headers=follower.headers).json()
    assert (notice["kind"], notice["version"]) == ("upgrade_pending", "1.1.0")
    assert "9 USD" in notice["message"]
    assert client.get(NOTICES, headers=pinned.headers).json() == []
    assert client.get(INSTALLS, headers=pinned.headers).json()[0]["pending_version"] is None
    assert events_sent() == ["marketplace.upgrade_pending"]  # the notice, once

    # Only the tenant itself accepts, and only for a following install with a notice.
    upgrade = f"{INSTALLS}/{install['id']}/upgrade"
    assert client.post(upgrade, headers=pinned.headers).status_code == 404
    pinned_upgrade = f"{INSTALLS}/{kept.json()['id']}/upgrade"
    assert client.post(pinned_upgrade, headers=pinned.headers).status_code == 409
    accepted = client.post(upgrade, headers=follower.headers)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["version"], accepted.json()["pending_version"]) == ("1.1.0", None)
    assert accepted.json()["pricing"]["unit_price"] == 9
    assert client.post(upgrade, headers=follower.headers).status_code == 409  # nothing pending
    assert events_sent() == ["marketplace.upgrade_pending", "marketplace.upgraded"]
    # Same name, new version: calls keep working, billed at the new tariff.
    assert (
        client.post(
            "/v2/models/species/infer", json=v2_body(), headers=follower.headers
        ).status_code
        == 200
    )
    models = client.get("/api/models", headers=follower.headers).json()
    assert [m["version"] for m in models if m["name"] == "species"] == ["1.1.0"]
    kinds = [n["kind"] for n in client.get(NOTICES, headers=follower.headers).json()]
    assert sorted(kinds) == ["upgrade_pending", "upgraded"]
    assert client.get(INSTALLS, headers=pinned.headers).json()[0]["version"] == "1.0.0"

    # Without accepting: moved once the delay has passed.
    publish(client, market, listing_id, "1.2.0", 11)
    now = datetime.now(UTC)
    assert check(backplane_app, follower, now) == 0
    assert client.get(INSTALLS, headers=follower.headers).json()[0]["version"] == "1.1.0"
    assert check(backplane_app, follower, now + timedelta(days=7, seconds=1)) == 1
    (shown,) = client.get(INSTALLS, headers=follower.headers).json()
    assert (shown["version"], shown["pricing"]["unit_price"]) == ("1.2.0", 11)

    items = [li for li in close_invoice(backplane_app, follower).lines if li.kind == "item"]
    assert sorted(li.amount for li in items) == [7, 9]  # one call at 1.0.0, one at 1.1.0
