"""Contacts through the API on SQLite and PostgreSQL (as the application role, RLS on):
normalised, deduplicated emails (also under concurrent creates), typed attributes, tags,
consent, list subscriptions, the timeline, paging, merges and their audit rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, all_contacts, define, environ_for, make_contact, make_list

from backplane.testing import SeededTenant, audit_trail


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def test_email_is_validated_normalised_and_unique(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    made = make_contact(client, "  Ada.Lovelace@EXAMPLE.org ", name="Ada")
    assert made["email"] == "ada.lovelace@example.org"
    again = client.post(CONTACTS, json={"email": "ADA.LOVELACE@example.ORG"})
    assert again.status_code == 409, again.text
    assert "exists" in again.json()["detail"]
    for bad in ("not-an-email", "a@b", "x@@example.org", ""):
        answer = client.post(CONTACTS, json={"email": bad})
        assert answer.status_code == 400, (bad, answer.text)
    assert "invalid email" in client.post(CONTACTS, json={"email": "nope"}).json()["detail"]
    found = client.get(CONTACTS, params={"email": "Ada.Lovelace@Example.org"}).json()["items"]
    assert [c["id"] for c in found] == [made["id"]]


def test_attributes_are_typed_per_tenant(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    define(client, "score", "number")
    define(client, "vip", "boolean")
    define(client, "birthday", "date")
    define(client, "plan", "string", choices=["free", "pro"])
    define(client, "interests", "list")
    good = {
        "score": 71.5,
        "vip": True,
        "birthday": "1815-12-10",
        "plan": "pro",
        "interests": ["maths", "poetry"],
    }
    made = make_contact(client, "ada@example.org", attributes=good)
    assert made["attributes"] == good
    for attributes, needle in (
        ({"score": "high"}, "not a number"),
        ({"vip": "maybe"}, "not a boolean"),
        ({"birthday": "10/12/1815"}, "not a date"),
        ({"plan": "enterprise"}, "not one of"),
        ({"interests": "maths"}, None),  # a string is split as a CSV cell would be: fine
        ({"colour": "red"}, "unknown attribute 'colour'"),
    ):
        answer = client.patch(f"{CONTACTS}/{made['id']}", json={"attributes": attributes})
        if needle is None:
            assert answer.status_code == 200, answer.text
            continue
        assert answer.status_code == 422, (attributes, answer.text)
        assert needle in answer.json()["detail"]
    patched = client.patch(f"{CONTACTS}/{made['id']}", json={"attributes": {"score": None}})
    assert "score" not in patched.json()["attributes"]
    duplicate = client.post("/api/marketing/attributes", json={"key": "vip", "type": "string"})
    assert duplicate.status_code == 409
    bad_key = client.post("/api/marketing/attributes", json={"key": "Bad Key", "type": "string"})
    assert bad_key.status_code == 400


def test_tags_consent_lists_and_timeline(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    news = make_list(client, "newsletter")
    made = make_contact(
        client,
        "grace@example.org",
        tags=["vip", "beta", "vip"],
        consent={"status": "granted", "source": "signup form"},
        lists=[{"list_id": news}],
    )
    assert made["tags"] == ["beta", "vip"]
    assert made["consent"]["status"] == "granted"
    assert made["consent"]["source"] == "signup form"
    assert made["consent"]["at"] is not None
    assert [s["status"] for s in made["lists"]] == ["subscribed"]
    url = f"{CONTACTS}/{made['id']}"
    changed = client.patch(
        url, json={"lists": [{"list_id": news, "status": "unsubscribed"}], "tags": ["beta"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["tags"] == ["beta"]
    assert changed.json()["lists"][0]["status"] == "unsubscribed"
    posted = client.post(f"{url}/events", json={"type": "webinar_attended", "data": {"id": 7}})
    assert posted.status_code == 201, posted.text
    kinds = [e["type"] for e in client.get(f"{url}/events").json()]
    assert kinds[0] == "webinar_attended"
    assert set(kinds) == {"webinar_attended", "unsubscribed", "subscribed", "consent_changed"}
    missing = client.patch(
        url, json={"lists": [{"list_id": "00000000-0000-4000-8000-000000000000"}]}
    )
    assert missing.status_code == 404
    assert client.get("/api/marketing/lists").json()[0]["subscribed"] == 0


def test_pages_cover_every_contact_once(backplane_client: TestClient[Litestar]) -> None:
    emails = {f"p{n}@example.org" for n in range(7)}
    for email in sorted(emails):
        make_contact(backplane_client, email)
    seen = [c["email"] for c in all_contacts(backplane_client)]
    assert sorted(seen) == sorted(emails)
    assert backplane_client.get(CONTACTS, params={"limit": 0}).status_code == 400


def test_merge_moves_everything_and_is_audited(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    define(client, "score", "number")
    define(client, "city", "string")
    news, offers = make_list(client, "news"), make_list(client, "offers")
    keep = make_contact(
        client,
        "ada@example.org",
        name="Ada",
        attributes={"score": 10},
        tags=["a"],
        lists=[{"list_id": news}],
    )
    dup = make_contact(
        client,
        "ada.l@example.org",
        name="A. Lovelace",
        attributes={"score": 99, "city": "London"},
        tags=["b"],
        lists=[{"list_id": news, "status": "unsubscribed"}, {"list_id": offers}],
    )
    client.post(f"{CONTACTS}/{dup['id']}/events", json={"type": "clicked", "data": {"link": "x"}})
    merged = client.post(f"{CONTACTS}/{keep['id']}/merge", json={"duplicate_id": dup["id"]})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["name"] == "Ada"
    assert body["attributes"] == {"score": 10, "city": "London"}
    assert body["tags"] == ["a", "b"]
    statuses = {s["list_id"]: s["status"] for s in body["lists"]}
    assert statuses == {news: "unsubscribed", offers: "subscribed"}  # the opt-out wins
    kinds = [e["type"] for e in client.get(f"{CONTACTS}/{keep['id']}/events").json()]
    assert "clicked" in kinds
    assert "merged" in kinds
    assert client.get(f"{CONTACTS}/{dup['id']}").status_code == 404
    assert [c["email"] for c in all_contacts(client)] == ["ada@example.org"]
    rows = audit_trail(client, backplane_tenant, "marketing.contacts_merged")
    assert len(rows) == 1
    assert rows[0].details["merged_email"] == "ada.l@example.org"
    itself = client.post(f"{CONTACTS}/{keep['id']}/merge", json={"duplicate_id": keep["id"]})
    assert itself.status_code == 400


def test_deleting_an_attribute_removes_its_values(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    define(client, "score", "string")
    made = make_contact(client, "ada@example.org", attributes={"score": "high"})
    assert client.delete("/api/marketing/attributes/score").status_code == 204
    assert client.get(f"{CONTACTS}/{made['id']}").json()["attributes"] == {}
    define(client, "score", "number")  # the old text value cannot break numeric filters
    preview = client.post(
        "/api/marketing/segments/preview",
        json={"filter": {"type": "attribute", "key": "score", "op": "gt", "value": 1}},
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 0
    assert client.delete("/api/marketing/attributes/score2").status_code == 404
