"""Ratings and written reviews over HTTP: only tenants that installed a listing rate it, one
review per tenant (a second PUT changes it), readers see reviews without their authors, the
listing shows the average and the count, the catalog sorts by rating and filters by price
model, and the publisher (only the listing's) replies."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from marketplace_helpers import bearer, environ_for, priced_market

from backplane.testing import audit_trail, seed_tenant

CATALOG = "/api/marketplace/catalog"
INSTALLS = "/api/marketplace/installs"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def install(client: Any, headers: dict[str, str], listing_id: str, name: str) -> str:
    made = client.post(INSTALLS, json={"listing_id": listing_id, "name": name}, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def catalog(client: Any, headers: dict[str, str], **query: str) -> list[dict[str, Any]]:
    answer = client.get(CATALOG, params=query, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_installers_rate_and_review_readers_see_no_authors_publisher_replies(
    backplane_app: Any,
    backplane_client: Any,
    backplane_tenant: Any,
    backplane_environ: dict[str, str],
) -> None:
    client = backplane_client  # the publisher's tenant
    market = priced_market(backplane_app, client, backplane_environ)
    per_request, per_row = market["per_request"], market["per_row"]
    first, second, third = (seed_tenant(backplane_app, n) for n in ("first", "second", "third"))
    review_of = f"{CATALOG}/{per_request}/review"

    # Only a tenant that installed the listing may review it.
    refused = client.put(review_of, json={"rating": 4}, headers=first.headers)
    assert refused.status_code == 403, refused.text
    assert "installed" in refused.json()["detail"]
    install(client, first.headers, per_request, "species")
    made = client.put(
        review_of, json={"rating": 4, "title": "Good", "body": "Fast"}, headers=first.headers
    )
    assert made.status_code == 201, made.text
    assert (made.json()["rating"], made.json()["mine"]) == (4, True)
    # A second PUT changes the tenant's one review.
    changed = client.put(review_of, json={"rating": 2, "body": "Slower now"}, headers=first.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == made.json()["id"]
    assert (changed.json()["rating"], changed.json()["title"]) == (2, "")
    # Bad input: a clear 4xx, nothing changed.
    for bad in ({"rating": 6}, {"rating": 0}, {"rating": "five"}, {"rating": 3, "extra": 1}, {}):
        answer = client.put(review_of, json=bad, headers=first.headers)
        assert answer.status_code == 400, (bad, answer.text)
    unknown = "00000000-0000-0000-0000-000000000000"
    assert (
        client.put(
            f"{CATALOG}/{unknown}/review", json={"rating": 3}, headers=first.headers
        ).status_code
        == 404
    )

    # The writer's own export holds the review (written in a user's session: a person).
    session = bearer(client, first)
    assert (
        client.put(review_of, json={"rating": 2, "body": "Slower now"}, headers=session).status_code
        == 200
    )
    person = {"user_id": str(first.user_id)}
    exported = client.post("/api/privacy/export", json=person, headers=first.headers)
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        rows = [
            json.loads(line)
            for line in archive.read("marketplace/marketplace_reviews.jsonl").splitlines()
        ]
    assert [r["id"] for r in rows] == [made.json()["id"]]

    install(client, second.headers, per_request, "species")
    assert client.put(review_of, json={"rating": 5}, headers=second.headers).status_code == 201
    listings = {entry["id"]: entry for entry in catalog(client, third.headers)}
    assert listings[per_request]["rating"] == {"average": 3.5, "count": 2}
    assert listings[per_row]["rating"] == {"average": None, "count": 0}

    # Sort by rating: rated before unrated, then the higher average first.
    assert [e["id"] for e in catalog(client, third.headers, sort="rating")] == [
        per_request,
        per_row,
    ]
    install(client, third.headers, per_row, "rows")
    assert (
        client.put(
            f"{CATALOG}/{per_row}/review", json={"rating": 5}, headers=third.headers
        ).status_code
        == 201
    )
    assert [e["id"] for e in catalog(client, third.headers, sort="rating")] == [
        per_row,
        per_request,
    ]
    # Filter by price model.
    assert [e["id"] for e in catalog(client, third.headers, price_model="per_row")] == [per_row]
    assert [e["id"] for e in catalog(client, third.headers, price_model="free")] == []
    assert (
        client.get(CATALOG, params={"price_model": "gratis"}, headers=third.headers).status_code
        == 400
    )
    assert client.get(CATALOG, params={"sort": "stars"}, headers=third.headers).status_code == 400

    # Readers (a tenant that installed nothing of it included) see the reviews, not who wrote.
    seen = client.get(f"{CATALOG}/{per_request}/reviews", headers=third.headers)
    assert seen.status_code == 200, seen.text
    assert sorted(r["rating"] for r in seen.json()) == [2, 5]
    assert not any(r["mine"] for r in seen.json())
    for tenant in (first, second):
        assert str(tenant.tenant_id) not in seen.text
        assert str(tenant.user_id) not in seen.text
    own = client.get(f"{CATALOG}/{per_request}/reviews", headers=first.headers).json()
    assert [r["rating"] for r in own if r["mine"]] == [2]
    paged = client.get(
        f"{CATALOG}/{per_request}/reviews", params={"limit": 1, "offset": 1}, headers=first.headers
    )
    assert len(paged.json()) == 1
    assert (
        client.get(
            f"{CATALOG}/{per_request}/reviews", params={"limit": 0}, headers=first.headers
        ).status_code
        == 400
    )

    # The publisher replies to a review of its own listing; nobody else can.
    review_id = made.json()["id"]
    reply_url = f"/api/marketplace/listings/{per_request}/reviews/{review_id}/reply"
    replied = client.put(reply_url, json={"reply": "Fixed in 1.1"})
    assert replied.status_code == 200, replied.text
    assert replied.json()["reply"] == "Fixed in 1.1"
    assert replied.json()["replied_at"] is not None
    mine = [
        r
        for r in client.get(f"{CATALOG}/{per_request}/reviews", headers=first.headers).json()
        if r["mine"]
    ]
    assert mine[0]["reply"] == "Fixed in 1.1"
    # A consumer is no publisher; another listing's path does not reach the review.
    assert client.put(reply_url, json={"reply": "x"}, headers=first.headers).status_code == 404
    wrong = f"/api/marketplace/listings/{per_row}/reviews/{review_id}/reply"
    assert client.put(wrong, json={"reply": "x"}).status_code == 404

    # A review stays the tenant's after uninstalling: it may still change or delete it.
    installs = client.get(INSTALLS, headers=first.headers).json()
    assert (
        client.delete(f"{INSTALLS}/{installs[0]['id']}", headers=first.headers).status_code == 204
    )
    assert client.put(review_of, json={"rating": 1}, headers=first.headers).status_code == 200
    assert client.delete(review_of, headers=first.headers).status_code == 204
    assert client.delete(review_of, headers=first.headers).status_code == 404
    listings = {entry["id"]: entry for entry in catalog(client, third.headers)}
    assert listings[per_request]["rating"] == {"average": 5.0, "count": 1}
    # Deleting another tenant's review is impossible: a tenant only ever reaches its own.
    assert client.delete(review_of, headers=third.headers).status_code == 404
    assert listings[per_request]["rating"]["count"] == 1

    actions = [entry.action for entry in audit_trail(backplane_app, first)]
    assert actions.count("marketplace.review_written") == 4
    assert "marketplace.review_deleted" in actions
    assert "marketplace.review_replied" in [
        entry.action for entry in audit_trail(backplane_app, backplane_tenant)
    ]
