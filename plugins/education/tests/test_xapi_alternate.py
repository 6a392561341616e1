"""The alternate request syntax (xAPI 1.0.3 Part Three 1.3) over real HTTP requests: a POST
with ``method=`` in the URL whose form body carries the headers, the parameters and the
content; every statement and document method through it, and its refusals. The credential
stays in the Authorization header (a documented gap: auth backends see no body)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import STATEMENTS, credential, new_id, statement

from backplane.testing import CHEAP_PASSWORD_HASHING

Client = TestClient[Litestar]
STATE = "/xapi/activities/state"
WHERE = {
    "activityId": "http://example.org/course/1",
    "agent": json.dumps({"mbox": "mailto:ada@example.org"}),
    "stateId": "bookmark",
}


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
def form_client(backplane_client: Client) -> tuple[Client, dict[str, str]]:
    """The client authenticated with an LRS credential, and the form fields that stand for
    the other headers (the version header goes in the form, not on the request)."""
    headers = credential(backplane_client)
    backplane_client.headers["Authorization"] = headers["Authorization"]
    return backplane_client, {"X-Experience-API-Version": headers["X-Experience-API-Version"]}


def alternate(client: Client, path: str, method: str, fields: dict[str, str], **form: Any) -> Any:
    return client.post(path, params={"method": method}, data={**fields, **form})


def test_statements_through_the_alternate_syntax(
    form_client: tuple[Client, dict[str, str]],
) -> None:
    client, fields = form_client
    sid = new_id()
    content = json.dumps(statement())
    put = alternate(
        client,
        STATEMENTS,
        "PUT",
        fields,
        statementId=sid,
        content=content,
        **{"Content-Type": "application/json"},
    )
    assert put.status_code == 204, put.text
    assert put.headers["X-Experience-API-Version"] == "1.0.3"
    got = alternate(client, STATEMENTS, "GET", fields, statementId=sid)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == sid
    posted = alternate(
        client,
        STATEMENTS,
        "POST",
        fields,
        content=json.dumps([statement(), statement()]),
        **{"Content-Type": "application/json"},
    )
    assert posted.status_code == 200, posted.text
    assert len(posted.json()) == 2
    listed = alternate(client, STATEMENTS, "GET", fields, limit="10")
    assert {s["id"] for s in listed.json()["statements"]} == {sid, *posted.json()}


def test_documents_through_the_alternate_syntax_keep_their_concurrency_headers(
    form_client: tuple[Client, dict[str, str]],
) -> None:
    client, fields = form_client
    body = {"content": json.dumps({"page": 3}), "Content-Type": "application/json"}
    first = alternate(client, STATE, "PUT", fields, **WHERE, **body, **{"If-None-Match": "*"})
    assert first.status_code == 204, first.text
    again = alternate(client, STATE, "PUT", fields, **WHERE, **body, **{"If-None-Match": "*"})
    assert again.status_code == 412
    got = alternate(client, STATE, "GET", fields, **WHERE)
    assert got.json() == {"page": 3}
    stale = alternate(client, STATE, "PUT", fields, **WHERE, **body, **{"If-Match": '"stale"'})
    assert stale.status_code == 412
    current = alternate(
        client, STATE, "PUT", fields, **WHERE, **body, **{"If-Match": got.headers["ETag"]}
    )
    assert current.status_code == 204
    merged = {"content": json.dumps({"score": 1}), "Content-Type": "application/json"}
    assert alternate(client, STATE, "POST", fields, **WHERE, **merged).status_code == 204
    assert alternate(client, STATE, "GET", fields, **WHERE).json() == {"page": 3, "score": 1}
    assert alternate(client, STATE, "DELETE", fields, **WHERE).status_code == 204
    assert alternate(client, STATE, "GET", fields, **WHERE).status_code == 404


def test_the_alternate_syntax_refusals(form_client: tuple[Client, dict[str, str]]) -> None:
    client, fields = form_client
    sid = new_id()
    extra = client.post(STATEMENTS, params={"method": "GET", "statementId": sid}, data=fields)
    assert extra.status_code == 400
    assert "method=" in extra.json()["error"]
    as_json = client.post(
        STATEMENTS, params={"method": "GET"}, json={"statementId": sid}, headers=fields
    )
    assert as_json.status_code == 400
    unknown = alternate(client, STATEMENTS, "PATCH", fields)
    assert unknown.status_code == 400
    signed_out = client.post(
        STATEMENTS,
        params={"method": "GET"},
        data={**fields, "Authorization": client.headers["Authorization"]},
        headers={"Authorization": ""},
    )
    assert signed_out.status_code == 401
    unversioned = {k: v for k, v in fields.items() if k != "X-Experience-API-Version"}
    assert alternate(client, STATEMENTS, "GET", unversioned).status_code == 400
    not_stored = alternate(client, STATEMENTS, "GET", fields, statementId=sid)
    assert not_stored.status_code == 404
