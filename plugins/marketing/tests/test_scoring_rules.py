"""Lead-scoring rules without a model: points per event decaying with a half-life and per
attribute value, reasons per rule, event intake by address rescoring the contact at once, the
score in segments, and clear refusals of bad rules and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import BASE, CONTACTS, SEGMENTS, define, environ_for, make_contact

from backplane_marketing.scoring.rules import decayed

Client = TestClient[Litestar]
RULES = f"{BASE}/scoring/rules"
EVENTS = f"{BASE}/events"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def rule(client: Client, **body: Any) -> dict[str, Any]:
    made = client.post(RULES, json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def event(client: Client, email: str, kind: str, days_ago: float = 0) -> None:
    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    posted = client.post(EVENTS, json={"email": email, "type": kind, "occurred_at": at})
    assert posted.status_code == 201, posted.text


def test_decay_halves_points_every_half_life() -> None:
    assert decayed(10, 0, 14) == 10
    assert decayed(10, 14, 14) == pytest.approx(5)
    assert decayed(10, 28, 14) == pytest.approx(2.5)
    assert decayed(10, 1000, None) == 10


def test_rules_score_contacts_with_reasons_and_follow_new_activity(
    backplane_client: Client,
) -> None:
    client = backplane_client
    define(client, "industry", "string")
    rule(client, kind="event", key="visited_pricing", points=10, half_life_days=14)
    rule(client, kind="event", key="webinar", points=15)
    rule(client, kind="attribute", key="industry", value="saas", points=20)
    assert [r["key"] for r in client.get(RULES).json()] == [
        "visited_pricing",
        "webinar",
        "industry",
    ]
    lead = make_contact(client, "Lead@Example.org", attributes={"industry": "saas"})
    other = make_contact(client, "other@example.org", attributes={"industry": "retail"})

    first = client.get(f"{CONTACTS}/{lead['id']}/score").json()
    assert (first["score"], first["source"]) == (20, "rules")
    assert [r["reason"] for r in first["reasons"]] == ["industry = saas"]

    event(client, "LEAD@example.org", "visited_pricing", days_ago=14)  # worth 5 by now
    event(client, "lead@example.org", "visited_pricing", days_ago=28)  # worth 2.5
    event(client, "lead@example.org", "webinar", days_ago=300)  # no half-life: 15
    event(client, "lead@example.org", "newsletter_read")  # no rule: nothing
    score = client.get(f"{CONTACTS}/{lead['id']}/score").json()
    assert score["rules_points"] == pytest.approx(20 + 5 + 2.5 + 15, abs=0.05)
    assert score["score"] == pytest.approx(42.5, abs=0.05)
    assert [r["reason"] for r in score["reasons"]] == [
        "industry = saas",
        "1 x webinar",
        "2 x visited_pricing (half-life 14 days)",
    ]
    timeline = client.get(f"{CONTACTS}/{lead['id']}/events").json()
    assert sorted(e["type"] for e in timeline) == [
        "newsletter_read",
        "visited_pricing",
        "visited_pricing",
        "webinar",
    ]

    for _ in range(8):  # capped at 100; the contact's own timeline route rescores too
        posted = client.post(f"{CONTACTS}/{lead['id']}/events", json={"type": "webinar"})
        assert posted.status_code == 201, posted.text
    capped = client.get(f"{CONTACTS}/{lead['id']}/score").json()
    assert capped["score"] == 100
    assert capped["rules_points"] > 100

    assert client.get(f"{CONTACTS}/{other['id']}/score").json()["score"] == 0
    preview = client.post(
        f"{SEGMENTS}/preview", json={"filter": {"type": "score", "op": "gt", "value": 70}}
    )
    assert preview.status_code == 200, preview.text
    assert (preview.json()["count"], preview.json()["sample"][0]["id"]) == (1, lead["id"])
    negated = client.post(
        f"{SEGMENTS}/preview",
        json={"filter": {"type": "not", "filter": {"type": "score", "op": "gt", "value": 70}}},
    )
    assert negated.json()["count"] == 1

    deleted = client.delete(f"{RULES}/{client.get(RULES).json()[1]['id']}")
    assert deleted.status_code == 204, deleted.text
    assert client.post(f"{BASE}/scoring/recompute").status_code == 202


def test_bad_rules_and_events_are_refused_clearly(
    backplane_client: Client, backplane_client_as: Any
) -> None:
    client = backplane_client
    for body, status, words in (
        ({"kind": "badge", "key": "x", "points": 1}, 400, "kind"),
        ({"kind": "event", "key": "x", "points": 5000}, 400, "points"),
        ({"kind": "attribute", "key": "x", "points": 1, "half_life_days": 3}, 422, "half_life"),
        ({"kind": "event", "key": "x", "value": "y", "points": 1}, 422, "value"),
        ({"kind": "event", "key": "x", "points": 1, "half_life_days": 0}, 400, "half_life"),
    ):
        refused = client.post(RULES, json=body)
        assert refused.status_code == status, (body, refused.text)
        assert words in refused.text
    assert client.get(RULES).json() == []
    unknown = client.post(EVENTS, json={"email": "nobody@example.org", "type": "opened"})
    assert unknown.status_code == 404
    assert "nobody@example.org" in unknown.text
    invalid = client.post(EVENTS, json={"email": "not an address", "type": "opened"})
    assert invalid.status_code == 400
    make_contact(client, "naive@example.org")
    naive = client.post(
        EVENTS,
        json={"email": "naive@example.org", "type": "opened", "occurred_at": "2026-01-01T00:00:00"},
    )
    assert naive.status_code == 400
    assert "time zone" in naive.text
    viewer = backplane_client_as("viewer")
    assert viewer.post(RULES, json={"kind": "event", "key": "x", "points": 1}).status_code == 403
    assert viewer.post(EVENTS, json={"email": "naive@example.org", "type": "x"}).status_code == 403
    assert client.delete(f"{RULES}/00000000-0000-0000-0000-000000000000").status_code == 404
