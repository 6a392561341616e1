"""The LRS's statement resource over real HTTP requests (xAPI 1.0.3 Part Three 2.1): storing,
conflicts, voiding, every query parameter with ``more`` paging, formats, attachments in
``multipart/mixed`` with their SHA-2 checks, signed statements, version headers, credentials."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import (
    ATTEMPTED,
    COMPLETED,
    CREDENTIALS,
    STATEMENTS,
    VERSION,
    VOIDED,
    attachment_info,
    basic,
    credential,
    new_id,
    statement,
    with_attachment,
)

from backplane.testing import CHEAP_PASSWORD_HASHING
from backplane_education.xapi.multipart import parse_mixed
from backplane_education.xapi.signatures import SIGNATURE_USAGE

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


def put(client: Client, auth: dict[str, str], body: Any, statement_id: str) -> Any:
    return client.put(STATEMENTS, params={"statementId": statement_id}, json=body, headers=auth)


def test_every_response_carries_the_version_and_requests_must_name_one(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    about = client.get("/xapi/about", headers={"Authorization": ""})
    assert about.status_code == 200
    assert "1.0.3" in about.json()["version"]
    assert about.headers["X-Experience-API-Version"] == "1.0.3"
    no_auth = client.get(STATEMENTS, headers={"Authorization": "", **VERSION})
    assert no_auth.status_code == 401
    assert no_auth.headers["X-Experience-API-Version"] == "1.0.3"
    assert no_auth.headers["WWW-Authenticate"].startswith("Basic")
    no_version = client.get(STATEMENTS, headers={"Authorization": lrs["Authorization"]})
    assert no_version.status_code == 400
    assert no_version.headers["X-Experience-API-Version"] == "1.0.3"
    old = client.get(STATEMENTS, headers={**lrs, "X-Experience-API-Version": "0.95"})
    assert old.status_code == 400
    bearer = client.get(STATEMENTS, headers=VERSION)  # the client's API key is not an LRS key
    assert bearer.status_code == 401
    wrong = basic(lrs["Authorization"], "x")
    assert client.get(STATEMENTS, headers=wrong).status_code == 401


def test_credential_scopes_and_revocation(backplane_client: Client) -> None:
    client = backplane_client
    reader, writer = credential(client, "read"), credential(client, "write")
    sid = new_id()
    assert put(client, reader, statement(), sid).status_code == 403
    assert put(client, writer, statement(), sid).status_code == 204
    assert client.get(STATEMENTS, headers=writer).status_code == 403
    assert client.get(STATEMENTS, params={"statementId": sid}, headers=reader).status_code == 200
    listed = client.get(CREDENTIALS).json()
    assert {c["scope"] for c in listed} == {"read", "write"}
    assert all("secret" not in c or c["secret"] is None for c in listed)
    key = next(c["key"] for c in listed if c["scope"] == "read")
    assert client.delete(f"{CREDENTIALS}/{key}").status_code == 204
    assert client.get(STATEMENTS, headers=reader).status_code == 401


def test_put_conflicts_and_post_batches(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    sid = new_id()
    assert put(client, lrs, statement(), sid).status_code == 204
    assert put(client, lrs, statement(), sid).status_code == 204  # the same again: no-op
    assert put(client, lrs, statement(verb=ATTEMPTED), sid).status_code == 409
    assert put(client, lrs, {**statement(), "id": new_id()}, sid).status_code == 400
    assert client.put(STATEMENTS, json=statement(), headers=lrs).status_code == 400
    got = client.get(STATEMENTS, params={"statementId": sid}, headers=lrs)
    assert got.status_code == 200
    stored = got.json()
    assert stored["id"] == sid
    assert stored["verb"]["id"] == COMPLETED
    assert stored["authority"]["account"]["name"]
    assert stored["stored"]
    assert stored["timestamp"]
    assert stored["version"]
    assert "Last-Modified" in got.headers
    assert "X-Experience-API-Consistent-Through" in got.headers
    batch = [statement(email=f"l{i}@example.org") for i in range(1000)]
    posted = client.post(STATEMENTS, json=batch, headers=lrs)
    assert posted.status_code == 200, posted.text
    assert len(set(posted.json())) == 1000
    conflicting = [statement(), {**statement(verb=ATTEMPTED), "id": sid}]
    assert client.post(STATEMENTS, json=conflicting, headers=lrs).status_code == 409
    twice = new_id()
    dup = [{**statement(), "id": twice}, {**statement(), "id": twice}]
    assert client.post(STATEMENTS, json=dup, headers=lrs).status_code == 400
    invalid = [statement(), {"actor": {"mbox": "ada"}, "verb": {"id": COMPLETED}}]
    assert client.post(STATEMENTS, json=invalid, headers=lrs).status_code == 400
    everything = client.get(STATEMENTS, params={"limit": "1100"}, headers=lrs).json()
    assert len(everything["statements"]) < 1100  # the page is capped, the rest by more
    assert everything["more"].startswith("/xapi/statements?more=")


def _all(client: Client, auth: dict[str, str], **params: str) -> list[dict[str, Any]]:
    """Every statement of a query, following ``more``."""
    found: list[dict[str, Any]] = []
    answer = client.get(STATEMENTS, params=params, headers=auth)
    while True:
        assert answer.status_code == 200, answer.text
        found += answer.json()["statements"]
        if not answer.json()["more"]:
            return found
        answer = client.get(answer.json()["more"], headers=auth)


def test_query_filters_paging_and_formats(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    registration = new_id()
    teacher = {"mbox": "mailto:teach@example.org"}
    made = [
        statement("ada@example.org", COMPLETED, "http://example.org/a"),
        statement("bob@example.org", ATTEMPTED, "http://example.org/a"),
        statement(
            "ada@example.org",
            ATTEMPTED,
            "http://example.org/b",
            context={
                "registration": registration,
                "instructor": teacher,
                "contextActivities": {"parent": [{"id": "http://example.org/a"}]},
            },
        ),
        {
            **statement("bob@example.org", COMPLETED),
            "object": {"objectType": "Agent", "mbox": "mailto:ada@example.org"},
        },
    ]
    ids = client.post(STATEMENTS, json=made, headers=lrs).json()
    ada = msgspec.json.encode({"mbox": "mailto:ada@example.org"}).decode()

    def ids_of(**params: str) -> list[str]:
        return [s["id"] for s in _all(client, lrs, **params)]

    assert ids_of(limit="1") == ids[::-1]  # newest first, one page at a time
    assert ids_of(limit="2", ascending="true") == ids
    assert set(ids_of(agent=ada)) == {ids[0], ids[2], ids[3]}  # actor or object
    assert ids_of(verb=ATTEMPTED) == [ids[2], ids[1]]
    assert set(ids_of(activity="http://example.org/a")) == {ids[0], ids[1]}
    related = ids_of(activity="http://example.org/a", related_activities="true")
    assert set(related) == {ids[0], ids[1], ids[2]}
    assert ids_of(registration=registration) == [ids[2]]
    teacher_json = msgspec.json.encode(teacher).decode()
    assert ids_of(agent=teacher_json) == []
    assert ids_of(agent=teacher_json, related_agents="true") == [ids[2]]
    stored = [s["stored"] for s in _all(client, lrs, ascending="true")]
    assert ids_of(until=stored[-1], since="2000-01-01T00:00:00Z")[0] == ids[-1]
    assert ids_of(since=stored[-1]) == []
    for bad in ({"verb": "not an iri"}, {"agent": "{}"}, {"limit": "x"}, {"colour": "red"}):
        answer = client.get(STATEMENTS, params=bad, headers=lrs)
        assert answer.status_code == 400, bad
    one = {"statementId": ids[0]}
    exact = client.get(STATEMENTS, params=one, headers=lrs).json()
    only_ids = client.get(STATEMENTS, params={**one, "format": "ids"}, headers=lrs).json()
    assert exact["actor"]["name"] == "ada"
    assert only_ids["actor"] == {"objectType": "Agent", "mbox": "mailto:ada@example.org"}
    assert only_ids["object"] == {"objectType": "Activity", "id": "http://example.org/a"}
    canonical = client.get(
        STATEMENTS,
        params={**one, "format": "canonical"},
        headers={**lrs, "Accept-Language": "fr-FR"},
    ).json()
    assert canonical["object"]["definition"]["name"] == {"fr-FR": "Cours"}


def test_voiding(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    target, voiding = new_id(), new_id()
    assert put(client, lrs, statement(), target).status_code == 204
    void = statement(verb=VOIDED) | {"object": {"objectType": "StatementRef", "id": target}}
    assert put(client, lrs, void, voiding).status_code == 204
    assert client.get(STATEMENTS, params={"statementId": target}, headers=lrs).status_code == 404
    found = client.get(STATEMENTS, params={"voidedStatementId": target}, headers=lrs)
    assert found.status_code == 200
    assert found.json()["id"] == target
    missing = client.get(STATEMENTS, params={"voidedStatementId": voiding}, headers=lrs)
    assert missing.status_code == 404
    assert [s["id"] for s in _all(client, lrs)] == [voiding]
    again = statement(verb=VOIDED) | {"object": {"objectType": "StatementRef", "id": voiding}}
    assert put(client, lrs, again, new_id()).status_code == 400
    assert (
        client.get(
            STATEMENTS, params={"statementId": target, "voidedStatementId": target}, headers=lrs
        ).status_code
        == 400
    )


def test_attachments_travel_in_multipart_with_their_hashes_checked(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    content = b"notes of the lesson\r\n--not a boundary\r\n" + bytes(range(256))
    made = statement(attachments=[attachment_info(content)])
    body, media, sha2 = with_attachment(made, content)
    posted = client.post(STATEMENTS, content=body, headers={**lrs, "Content-Type": media})
    assert posted.status_code == 200, posted.text
    [sid] = posted.json()
    got = client.get(STATEMENTS, params={"statementId": sid, "attachments": "true"}, headers=lrs)
    assert got.headers["content-type"].startswith("multipart/mixed")
    document, parts = parse_mixed(got.headers["content-type"], got.content)
    assert document["id"] == sid
    assert [(p.sha2, p.content) for p in parts] == [(sha2, content)]
    page = client.get(STATEMENTS, params={"attachments": "true"}, headers=lrs)
    assert parse_mixed(page.headers["content-type"], page.content)[1][0].content == content
    tampered = body.replace(b"notes of the lesson", b"notes of the lessoN")
    refused = client.post(STATEMENTS, content=tampered, headers={**lrs, "Content-Type": media})
    assert refused.status_code == 400
    orphan = client.post(STATEMENTS, json=made, headers=lrs)  # no part for the attachment
    assert orphan.status_code == 400
    linked = statement(attachments=[attachment_info(b"x") | {"fileUrl": "http://e.org/x"}])
    assert client.post(STATEMENTS, json=linked, headers=lrs).status_code == 200


def test_signed_statements(backplane_client: Client, lrs: dict[str, str]) -> None:
    from joserfc import jws
    from joserfc.jwk import RSAKey

    client = backplane_client
    key = RSAKey.generate_key(2048)
    made = statement()
    token = jws.serialize_compact({"alg": "RS256"}, msgspec.json.encode(made), key).encode()
    signature = {
        "usageType": SIGNATURE_USAGE,
        "display": {"en-US": "signature"},
        "contentType": "application/octet-stream",
        "length": len(token),
        "sha2": hashlib.sha256(token).hexdigest(),
    }
    signed = made | {"attachments": [signature]}
    body, media, _ = with_attachment(signed, token, "application/octet-stream")
    posted = client.post(STATEMENTS, content=body, headers={**lrs, "Content-Type": media})
    assert posted.status_code == 200, posted.text
    forged = signed | {"verb": {"id": ATTEMPTED}}
    body, media, _ = with_attachment(forged, token, "application/octet-stream")
    refused = client.post(STATEMENTS, content=body, headers={**lrs, "Content-Type": media})
    assert refused.status_code == 400
    assert "does not match" in refused.json()["error"]


def test_limits_are_413(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    too_many = [statement() for _ in range(5001)]
    assert client.post(STATEMENTS, json=too_many, headers=lrs).status_code == 413


def test_agents_and_activities(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    assert client.post(STATEMENTS, json=statement(), headers=lrs).status_code == 200
    agent = msgspec.json.encode({"mbox": "mailto:ada@example.org", "name": "Ada"}).decode()
    person = client.get("/xapi/agents", params={"agent": agent}, headers=lrs).json()
    assert person == {"objectType": "Person", "name": ["Ada"], "mbox": ["mailto:ada@example.org"]}
    found = client.get(
        "/xapi/activities", params={"activityId": "http://example.org/course/1"}, headers=lrs
    ).json()
    assert found["definition"]["name"]["fr-FR"] == "Cours"
    assert client.get("/xapi/activities", headers=lrs).status_code == 400
    assert client.get("/xapi/agents", params={"agent": "{}"}, headers=lrs).status_code == 400


def test_head_answers_as_get_without_a_body(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    sid = new_id()
    assert put(client, lrs, statement(), sid).status_code == 204
    about = client.head("/xapi/about")
    assert about.status_code == 200
    assert about.headers["X-Experience-API-Version"] == "1.0.3"
    assert about.content == b""
    one = client.head(STATEMENTS, params={"statementId": sid}, headers=lrs)
    assert one.status_code == 200
    assert one.content == b""
    assert "Last-Modified" in one.headers
    assert client.head(STATEMENTS, params={"statementId": new_id()}, headers=lrs).status_code == 404
    state = {
        "activityId": "http://example.org/course/1",
        "agent": '{"mbox": "mailto:ada@example.org"}',
        "stateId": "s",
    }
    assert (
        client.put("/xapi/activities/state", params=state, json={"a": 1}, headers=lrs).status_code
        == 204
    )
    headed = client.head("/xapi/activities/state", params=state, headers=lrs)
    assert headed.status_code == 200
    assert headed.headers["ETag"].startswith('"')
    assert headed.content == b""
    assert (
        client.head(
            "/xapi/activities", params={"activityId": "http://e.org/a"}, headers=lrs
        ).status_code
        == 200
    )
    assert (
        client.head("/xapi/agents", params={"agent": state["agent"]}, headers=lrs).status_code
        == 200
    )
    assert (
        client.head(STATEMENTS, headers={"Authorization": lrs["Authorization"]}).status_code == 400
    )
