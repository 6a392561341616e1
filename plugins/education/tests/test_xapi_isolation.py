"""Acceptance 5 for the LRS: another tenant's LRS credentials see nothing of A's statements,
documents, activities or attachments, and cannot change them (SQLite: the session's tenant
filter; PostgreSQL: row-level security as the application role); a key naming another tenant
is refused; a learner's export holds their statements and erasure removes them."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import (
    ATTEMPTED,
    CREDENTIALS,
    STATEMENTS,
    attachment_info,
    basic,
    credential,
    new_id,
    statement,
    with_attachment,
)

from backplane.testing import CHEAP_PASSWORD_HASHING, seed_tenant

Client = TestClient[Litestar]
ACTIVITY = "http://example.org/course/1"
ADA = msgspec.json.encode({"mbox": "mailto:ada@example.org"}).decode()


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


def test_another_tenants_credentials_see_nothing(
    backplane_client: Client, backplane_plugins: object
) -> None:
    client = backplane_client
    a = credential(client)
    content = b"A's private notes"
    sid = new_id()
    made = statement(id=sid, attachments=[attachment_info(content)])
    body, media, _ = with_attachment(made, content)
    assert (
        client.post(STATEMENTS, content=body, headers={**a, "Content-Type": media}).status_code
        == 200
    )
    state = {"activityId": ACTIVITY, "agent": ADA, "stateId": "s"}
    profile = {"activityId": ACTIVITY, "profileId": "p"}
    agent_profile = {"agent": ADA, "profileId": "p"}
    for path, params in (
        ("/xapi/activities/state", state),
        ("/xapi/activities/profile", profile),
        ("/xapi/agents/profile", agent_profile),
    ):
        answer = client.put(path, params=params, json={"secret": "A"}, headers=a)
        assert answer.status_code == 204, answer.text
    b_tenant = seed_tenant(backplane_plugins, "globex")
    b = credential(client, headers=b_tenant.headers)

    assert client.get(STATEMENTS, headers=b).json() == {"statements": [], "more": ""}
    for params in (
        {"statementId": sid},
        {"voidedStatementId": sid},
    ):
        assert client.get(STATEMENTS, params=params, headers=b).status_code == 404
    for params in ({"agent": ADA}, {"activity": ACTIVITY, "related_activities": "true"}):
        assert client.get(STATEMENTS, params=params, headers=b).json()["statements"] == []
    attached = client.get(STATEMENTS, params={"attachments": "true"}, headers=b)
    assert b"private" not in attached.content
    for path, params in (
        ("/xapi/activities/state", state),
        ("/xapi/activities/profile", profile),
        ("/xapi/agents/profile", agent_profile),
    ):
        assert client.get(path, params=params, headers=b).status_code == 404
        listing = {k: v for k, v in params.items() if k not in ("stateId", "profileId")}
        assert client.get(path, params=listing, headers=b).json() == []
        assert client.delete(path, params=params, headers=b).status_code in (204, 404)
        assert client.get(path, params=params, headers=a).json() == {"secret": "A"}
    found = client.get("/xapi/activities", params={"activityId": ACTIVITY}, headers=b).json()
    assert "definition" not in found
    # B may store a statement under the same id: it is B's, A's is untouched
    clash = client.put(
        STATEMENTS, params={"statementId": sid}, json=statement(verb=ATTEMPTED), headers=b
    )
    assert clash.status_code == 204
    assert (
        client.get(STATEMENTS, params={"statementId": sid}, headers=a).json()["verb"]["id"]
        != ATTEMPTED
    )
    assert client.get(CREDENTIALS, headers=b_tenant.headers).json()[0]["name"] == "lms all"
    assert len(client.get(CREDENTIALS, headers=b_tenant.headers).json()) == 1
    a_key = client.get(CREDENTIALS).json()[0]["key"]
    assert client.delete(f"{CREDENTIALS}/{a_key}", headers=b_tenant.headers).status_code == 404
    assert client.get(STATEMENTS, headers=a).status_code == 200
    # a key whose tenant part names B with A's key's secret: no such credential in B
    forged_key = f"xapi-{b_tenant.tenant_id.hex}-{a_key.rsplit('-', 1)[1]}"
    secret = a["Authorization"]  # not the secret: any value fails
    assert client.get(STATEMENTS, headers=basic(forged_key, secret)).status_code == 401


def test_a_learners_export_and_erasure(backplane_client: Client) -> None:
    client = backplane_client
    lrs = credential(client)
    ada, bob = statement("ada@example.org"), statement("bob@example.org")
    taught = statement(
        "bob@example.org", context={"instructor": {"mbox": "mailto:ada@example.org"}}
    )
    ids = client.post(STATEMENTS, json=[ada, bob, taught], headers=lrs).json()
    state = {"activityId": ACTIVITY, "agent": ADA, "stateId": "bookmark"}
    assert (
        client.put("/xapi/activities/state", params=state, json={"p": 1}, headers=lrs).status_code
        == 204
    )

    exported = client.post("/api/privacy/export", json={"email": "ada@example.org"})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        names = archive.namelist()
        rows = [
            json.loads(line)
            for name in names
            if name.endswith("xapi_statements.jsonl")
            for line in archive.read(name).decode().splitlines()
        ]
    assert {str(r["statement_id"]) for r in rows} == {ids[0], ids[2]}
    assert any(name.endswith("xapi_documents.jsonl") for name in names)

    erased = client.post("/api/privacy/erase", json={"email": "ada@example.org"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["education"]["xapi_statements"] == 2
    left = client.get(STATEMENTS, headers=lrs).json()["statements"]
    assert [s["id"] for s in left] == [ids[1]]
    assert (
        client.get(STATEMENTS, params={"agent": ADA, "related_agents": "true"}, headers=lrs).json()[
            "statements"
        ]
        == []
    )
    assert client.get("/xapi/activities/state", params=state, headers=lrs).status_code == 404
