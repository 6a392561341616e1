"""Segments on SQLite and PostgreSQL: every kind of condition, with and/or/not, compiled to one
SQL statement whose results equal sets computed by hand from the seeded contacts; static
segments keep their members until refreshed, dynamic ones follow the data; bad filters are
clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, SEGMENTS, define, environ_for, make_contact, make_list
from sqlalchemy import event
from sqlalchemy.engine import Engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path)


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
def people(backplane_client: TestClient[Litestar]) -> dict[str, Any]:
    """Five contacts whose memberships the tests below compute by hand."""
    client = backplane_client
    define(client, "score", "number")
    define(client, "vip", "boolean")
    define(client, "joined", "date")
    define(client, "interests", "list")
    news = make_list(client, "news")
    ids = {}
    ids["c1"] = make_contact(
        client,
        "c1@example.org",
        tags=["a"],
        lists=[{"list_id": news}],
        attributes={"score": 90, "vip": True, "joined": "2026-01-10", "interests": ["maths"]},
    )["id"]
    ids["c2"] = make_contact(
        client,
        "c2@example.org",
        tags=["b"],
        lists=[{"list_id": news, "status": "unsubscribed"}],
        attributes={"score": 50, "joined": "2025-06-01"},
    )["id"]
    ids["c3"] = make_contact(
        client, "c3@example.org", attributes={"score": 75, "interests": ["poetry", "maths"]}
    )["id"]
    ids["c4"] = make_contact(client, "c4@example.org", tags=["a", "b"])["id"]
    ids["c5"] = make_contact(client, "c5@other.org", attributes={"score": 70, "vip": False})["id"]
    for who, kind, days, data in (
        ("c1", "clicked", 2, {"link": "pricing"}),
        ("c2", "opened", 40, {}),
        ("c3", "clicked", 1, {"link": "blog"}),
        ("c4", "opened", 1, {}),
        ("c4", "opened", 5, {}),
        ("c4", "opened", 9, {}),
    ):
        posted = client.post(
            f"{CONTACTS}/{ids[who]}/events",
            json={"type": kind, "data": data, "occurred_at": ago(days)},
        )
        assert posted.status_code == 201, posted.text
    return {"ids": ids, "news": news}


def matched(client: TestClient[Litestar], ids: dict[str, str], tree: dict[str, Any]) -> set[str]:
    answer = client.post(f"{SEGMENTS}/preview", json={"filter": tree})
    assert answer.status_code == 200, (tree, answer.text)
    names = {v: k for k, v in ids.items()}
    found = {names[c["id"]] for c in answer.json()["sample"]}
    assert answer.json()["count"] == len(found), tree
    return found


def attr(key: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"type": "attribute", "key": key, "op": op, "value": value}


def tag(name: str) -> dict[str, Any]:
    return {"type": "tag", "tag": name}


def test_filters_match_hand_computed_sets(
    backplane_client: TestClient[Litestar], people: dict[str, Any]
) -> None:
    ids, news = people["ids"], people["news"]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (attr("score", "gt", 70), {"c1", "c3"}),
        ({"type": "not", "filter": attr("score", "gt", 70)}, {"c2", "c4", "c5"}),
        (attr("score", "gte", 70), {"c1", "c3", "c5"}),
        (attr("score", "in", [50, 75]), {"c2", "c3"}),
        (attr("score", "exists"), {"c1", "c2", "c3", "c5"}),
        (attr("vip", "eq", False), {"c5"}),
        (attr("joined", "gte", "2026-01-01"), {"c1"}),
        (attr("interests", "contains", "maths"), {"c1", "c3"}),
        ({"type": "or", "any": [tag("a"), tag("b")]}, {"c1", "c2", "c4"}),
        ({"type": "and", "all": [tag("a"), {"type": "not", "filter": tag("b")}]}, {"c1"}),
        ({"type": "list", "list_id": news}, {"c1"}),
        ({"type": "list", "list_id": news, "status": "unsubscribed"}, {"c2"}),
        ({"type": "activity", "event": "clicked", "within_days": 30}, {"c1", "c3"}),
        (
            {
                "type": "activity",
                "event": "clicked",
                "within_days": 30,
                "where": {"link": "pricing"},
            },
            {"c1"},
        ),
        ({"type": "activity", "event": "opened", "within_days": 30, "min_count": 3}, {"c4"}),
        ({"type": "activity", "event": "opened", "within_days": 60}, {"c2", "c4"}),
        ({"type": "field", "field": "email_domain", "op": "eq", "value": "other.org"}, {"c5"}),
        (
            {
                "type": "field",
                "field": "email",
                "op": "in",
                "value": ["C1@example.org", "c2@example.org"],
            },
            {"c1", "c2"},
        ),
        (
            {
                "type": "and",
                "all": [
                    {"type": "or", "any": [attr("score", "gt", 70), tag("b")]},
                    {
                        "type": "not",
                        "filter": {"type": "activity", "event": "opened", "within_days": 60},
                    },
                ],
            },
            {"c1", "c3"},
        ),
        ({"type": "and", "all": []}, {"c1", "c2", "c3", "c4", "c5"}),
    ]
    for tree, expected in cases:
        assert matched(backplane_client, ids, tree) == expected, tree


@pytest.fixture
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_a_segment_is_counted_by_one_statement(
    backplane_client: TestClient[Litestar], people: dict[str, Any], statements: list[str]
) -> None:
    tree = {
        "type": "and",
        "all": [
            {"type": "or", "any": [attr("score", "gt", 70), tag("b")]},
            {"type": "activity", "event": "clicked", "within_days": 30},
            {"type": "not", "filter": {"type": "list", "list_id": people["news"]}},
        ],
    }
    statements.clear()
    assert matched(backplane_client, people["ids"], tree) == {"c3"}
    counts = [s for s in statements if "count(" in s.lower() and "marketing_contacts" in s]
    assert len(counts) == 1, counts
    assert "marketing_events" in counts[0]
    assert "marketing_contact_tags" in counts[0]
    assert "marketing_subscriptions" in counts[0]


def test_static_segments_keep_members_dynamic_ones_follow(
    backplane_client: TestClient[Litestar], people: dict[str, Any]
) -> None:
    client, ids = backplane_client, people["ids"]
    static = client.post(SEGMENTS, json={"name": "A static", "kind": "static", "filter": tag("a")})
    dynamic = client.post(SEGMENTS, json={"name": "A dynamic", "filter": tag("a")})
    assert static.status_code == 201, static.text
    assert dynamic.status_code == 201, dynamic.text
    assert static.json()["count"] == dynamic.json()["count"] == 2
    client.patch(f"{CONTACTS}/{ids['c2']}", json={"tags": ["a"]})

    def members(segment: dict[str, Any]) -> set[str]:
        page = client.get(f"{SEGMENTS}/{segment['id']}/contacts").json()["items"]
        return {c["email"].split("@")[0] for c in page}

    assert members(static.json()) == {"c1", "c4"}
    assert members(dynamic.json()) == {"c1", "c2", "c4"}
    refreshed = client.post(f"{SEGMENTS}/{static.json()['id']}/refresh")
    assert refreshed.json()["count"] == 3
    assert members(static.json()) == {"c1", "c2", "c4"}
    assert client.post(f"{SEGMENTS}/{dynamic.json()['id']}/refresh").status_code == 409
    again = client.post(SEGMENTS, json={"name": "A static", "filter": tag("a")})
    assert again.status_code == 409


def test_bad_filters_are_clear_errors(
    backplane_client: TestClient[Litestar], people: dict[str, Any]
) -> None:
    client = backplane_client
    deep: dict[str, Any] = tag("a")
    for _ in range(12):
        deep = {"type": "not", "filter": deep}
    for tree, status, needle in (
        (attr("colour", "eq", "red"), 422, "unknown attribute 'colour'"),
        (attr("vip", "gt", 1), 422, "does not apply to boolean"),
        (attr("score", "gt", "high"), 422, "compares with a number"),
        (attr("joined", "gt", "yesterday"), 422, "not a date"),
        ({"type": "magic"}, 400, "bad filter"),
        ({"type": "and", "all": [{"type": "tag"}]}, 400, "bad filter"),
        (deep, 400, "max_segment_depth"),
    ):
        answer = client.post(f"{SEGMENTS}/preview", json={"filter": tree})
        assert answer.status_code == status, (tree, answer.text)
        assert needle in answer.json()["detail"], answer.text
