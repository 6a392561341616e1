"""What users do at once, on PostgreSQL (as the application role, RLS on): one address created
by many requests at the same moment makes one contact, the others a 409, never a 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import ATTRIBUTES, CONTACTS, all_contacts, base_environ


@pytest.fixture
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return base_environ(tmp_path) | request.getfixturevalue("backplane_postgres_database")


@pytest.mark.postgres
def test_concurrent_creates_of_one_address_make_one_contact(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda n: client.post(CONTACTS, json={"email": "Race@Example.org"}), range(8))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, [a.text for a in answers]
    assert len(all_contacts(client)) == 1


@pytest.mark.postgres
def test_concurrent_events_of_one_contact_are_all_scored(
    backplane_client: TestClient[Litestar],
) -> None:
    """Eight events of one contact at once: each request rescores the same score row (an
    upsert, never a duplicate-key 500), and the last word counts all eight."""
    client = backplane_client
    rule = {"kind": "event", "key": "visited_pricing", "points": 5}
    assert client.post("/api/marketing/scoring/rules", json=rule).status_code == 201
    contact = client.post(CONTACTS, json={"email": "busy@example.org"}).json()
    event = {"email": "busy@example.org", "type": "visited_pricing"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: client.post("/api/marketing/events", json=event), range(8))
        )
    assert sorted(a.status_code for a in answers) == [201] * 8, [a.text for a in answers]
    assert client.post("/api/marketing/events", json=event).status_code == 201
    score = client.get(f"{CONTACTS}/{contact['id']}/score").json()
    assert score["rules_points"] == 45
    assert score["reasons"][0]["reason"] == "9 x visited_pricing"


@pytest.mark.postgres
def test_concurrent_definitions_of_one_attribute_make_one(
    backplane_client: TestClient[Litestar],
) -> None:
    """Eight admins define the same attribute key at once: one 201, seven 409, never a 500."""
    client = backplane_client
    body = {"key": "plan", "type": "string"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: client.post(ATTRIBUTES, json=body), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 7, [a.text for a in answers]
    keys = [row["key"] for row in client.get(ATTRIBUTES).json()]
    assert keys.count("plan") == 1
