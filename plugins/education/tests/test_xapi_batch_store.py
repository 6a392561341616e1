"""The batch write path (one SQL statement per batch on PostgreSQL, a few on SQLite) keeps
every storing rule: a statement arriving after the voiding statement that targets it is stored
voided, a target and its voiding statement in one batch, related keys of every statement of a
batch, the latest activity definition of a batch as the canonical one, and all-or-nothing on a
conflicting id inside a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import ATTEMPTED, STATEMENTS, VOIDED, credential, new_id, statement

from backplane.testing import CHEAP_PASSWORD_HASHING

Client = TestClient[Litestar]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


@pytest.fixture
def lrs(backplane_client: Client) -> dict[str, str]:
    return credential(backplane_client)


def voiding(target: str) -> dict[str, Any]:
    return statement(verb=VOIDED) | {"object": {"objectType": "StatementRef", "id": target}}


def visible(client: Client, auth: dict[str, str], statement_id: str) -> bool:
    found = client.get(STATEMENTS, params={"statementId": statement_id}, headers=auth)
    return found.status_code == 200


def voided(client: Client, auth: dict[str, str], statement_id: str) -> bool:
    found = client.get(STATEMENTS, params={"voidedStatementId": statement_id}, headers=auth)
    return found.status_code == 200


def test_a_statement_voided_before_it_arrives_is_stored_voided(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    late, kept = new_id(), new_id()
    assert client.post(STATEMENTS, json=voiding(late), headers=lrs).status_code == 200
    batch = [statement() | {"id": late}, statement() | {"id": kept}]
    assert client.post(STATEMENTS, json=batch, headers=lrs).status_code == 200
    assert voided(client, lrs, late)
    assert not visible(client, lrs, late)
    assert visible(client, lrs, kept)
    assert not voided(client, lrs, kept)


@pytest.mark.parametrize("voiding_first", [True, False])
def test_a_target_and_its_voiding_statement_in_one_batch(
    backplane_client: Client, lrs: dict[str, str], voiding_first: bool
) -> None:
    client = backplane_client
    target, void_id = new_id(), new_id()
    pair = [statement() | {"id": target}, voiding(target) | {"id": void_id}]
    batch = pair[::-1] if voiding_first else pair
    answer = client.post(STATEMENTS, json=batch, headers=lrs)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [s["id"] for s in batch]
    assert voided(client, lrs, target)
    assert not visible(client, lrs, target)
    assert visible(client, lrs, void_id)


def test_a_batch_stores_related_keys_and_the_latest_definition(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    activity = "http://example.org/lesson/7"
    first = statement(activity=activity)
    first["object"]["definition"] = {"name": {"en-US": "Old name"}}
    second = statement(email="bo@example.org", verb=ATTEMPTED, activity=activity)
    second["object"]["definition"] = {"name": {"en-US": "New name"}}
    second["context"] = {"contextActivities": {"parent": [{"id": "http://example.org/track"}]}}
    answer = client.post(STATEMENTS, json=[first, second], headers=lrs)
    assert answer.status_code == 200, answer.text
    related = client.get(
        STATEMENTS,
        params={"activity": "http://example.org/track", "related_activities": "true"},
        headers=lrs,
    )
    assert [s["id"] for s in related.json()["statements"]] == [answer.json()[1]]
    by_agent = client.get(
        STATEMENTS,
        params={"agent": '{"mbox": "mailto:bo@example.org"}', "related_agents": "true"},
        headers=lrs,
    )
    assert [s["id"] for s in by_agent.json()["statements"]] == [answer.json()[1]]
    canonical = client.get("/xapi/activities", params={"activityId": activity}, headers=lrs)
    assert canonical.json()["definition"] == {"name": {"en-US": "New name"}}


def test_a_batch_with_a_conflicting_id_stores_nothing(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    taken = new_id()
    assert client.post(STATEMENTS, json=statement() | {"id": taken}, headers=lrs).status_code == 200
    fresh = new_id()
    differing = statement(verb=ATTEMPTED) | {"id": taken}
    batch = [statement() | {"id": fresh}, differing]
    assert client.post(STATEMENTS, json=batch, headers=lrs).status_code == 409
    assert not visible(client, lrs, fresh)
    same_again = [statement() | {"id": fresh}, statement() | {"id": taken}]
    assert client.post(STATEMENTS, json=same_again, headers=lrs).status_code == 200
    assert visible(client, lrs, fresh)
