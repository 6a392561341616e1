"""The document resources over HTTP (xAPI 1.0.3 Part Three 2.3-2.5): State, Activity Profile
and Agent Profile with ETags, If-Match/If-None-Match (409 and 412), JSON merge on POST, listing
by ``since``, deletion, and concurrent writers holding the same ETag."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import credential, new_id

from backplane.testing import CHEAP_PASSWORD_HASHING

Client = TestClient[Litestar]
ACTIVITY = "http://example.org/course/1"
AGENT = msgspec.json.encode({"objectType": "Agent", "mbox": "mailto:ada@example.org"}).decode()
STATE = "/xapi/activities/state"
ACTIVITY_PROFILE = "/xapi/activities/profile"
AGENT_PROFILE = "/xapi/agents/profile"


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


def send(
    client: Client,
    method: str,
    path: str,
    auth: dict[str, str],
    params: dict[str, str],
    body: Any = None,
    **headers: str,
) -> Any:
    content = msgspec.json.encode(body) if body is not None else None
    kinds = {"Content-Type": "application/json"} if body is not None else {}
    return client.request(
        method, path, params=params, content=content, headers={**auth, **kinds, **headers}
    )


def test_state_documents(backplane_client: Client, lrs: dict[str, str]) -> None:
    client = backplane_client
    registration = new_id()
    where = {"activityId": ACTIVITY, "agent": AGENT, "registration": registration}
    one = {**where, "stateId": "bookmark"}
    assert send(client, "PUT", STATE, lrs, one, {"page": 3}).status_code == 204
    got = send(client, "GET", STATE, lrs, one)
    assert got.status_code == 200
    assert got.json() == {"page": 3}
    assert got.headers["ETag"].startswith('"')
    assert got.headers["X-Experience-API-Version"] == "1.0.3"
    assert send(client, "PUT", STATE, lrs, one, {"page": 4}).status_code == 204  # no header needed
    assert send(client, "POST", STATE, lrs, one, {"score": 1}).status_code == 204
    assert send(client, "GET", STATE, lrs, one).json() == {"page": 4, "score": 1}
    plain = client.put(
        STATE,
        params={**where, "stateId": "notes"},
        content=b"plain text",
        headers={**lrs, "Content-Type": "text/plain"},
    )
    assert plain.status_code == 204
    text = send(client, "GET", STATE, lrs, {**where, "stateId": "notes"})
    assert text.content == b"plain text"
    assert text.headers["content-type"].startswith("text/plain")
    merge_text = send(client, "POST", STATE, lrs, {**where, "stateId": "notes"}, {"a": 1})
    assert merge_text.status_code == 400
    listed = send(client, "GET", STATE, lrs, where)
    assert sorted(listed.json()) == ["bookmark", "notes"]
    future = {**where, "since": "2999-01-01T00:00:00Z"}
    assert send(client, "GET", STATE, lrs, future).json() == []
    other_registration = {**where, "registration": new_id()}
    assert send(client, "GET", STATE, lrs, other_registration).json() == []
    assert send(client, "DELETE", STATE, lrs, one).status_code == 204
    assert send(client, "GET", STATE, lrs, one).status_code == 404
    assert send(client, "DELETE", STATE, lrs, where).status_code == 204  # all of the scope
    assert send(client, "GET", STATE, lrs, where).json() == []
    for bad in (
        {"agent": AGENT, "stateId": "x"},
        {"activityId": "not an iri", "agent": AGENT, "stateId": "x"},
        {"activityId": ACTIVITY, "agent": "{}", "stateId": "x"},
        {**one, "registration": "nope"},
        {**one, "colour": "red"},
    ):
        assert send(client, "PUT", STATE, lrs, bad, {"a": 1}).status_code == 400, bad
    no_version = {"Authorization": lrs["Authorization"]}
    assert send(client, "GET", STATE, no_version, one).status_code == 400


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (ACTIVITY_PROFILE, {"activityId": ACTIVITY}),
        (AGENT_PROFILE, {"agent": AGENT}),
    ],
)
def test_profiles_need_concurrency_headers(
    backplane_client: Client, lrs: dict[str, str], path: str, where: dict[str, str]
) -> None:
    client = backplane_client
    one = {**where, "profileId": "prefs"}
    created = send(client, "PUT", path, lrs, one, {"theme": "dark"}, **{"If-None-Match": "*"})
    assert created.status_code == 204
    etag = send(client, "GET", path, lrs, one).headers["ETag"]
    assert send(client, "PUT", path, lrs, one, {"theme": "light"}).status_code == 409
    exists = send(client, "PUT", path, lrs, one, {"x": 1}, **{"If-None-Match": "*"})
    assert exists.status_code == 412
    stale = send(client, "PUT", path, lrs, one, {"x": 1}, **{"If-Match": '"0000"'})
    assert stale.status_code == 412
    fresh = send(client, "PUT", path, lrs, one, {"theme": "light"}, **{"If-Match": etag})
    assert fresh.status_code == 204
    assert send(client, "GET", path, lrs, one).json() == {"theme": "light"}
    assert send(client, "POST", path, lrs, one, {"size": 2}).status_code == 204
    assert send(client, "GET", path, lrs, one).json() == {"theme": "light", "size": 2}
    assert send(client, "GET", path, lrs, where).json() == ["prefs"]
    old_etag = {"If-Match": etag}
    assert send(client, "DELETE", path, lrs, one, **old_etag).status_code == 412
    assert send(client, "DELETE", path, lrs, one).status_code == 204
    assert send(client, "GET", path, lrs, one).status_code == 404
    missing = send(client, "PUT", path, lrs, one, {"x": 1}, **{"If-Match": etag})
    assert missing.status_code == 412


def test_concurrent_writers_with_one_etag_one_wins(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    """Eight writers read the same ETag and PUT with If-Match at once: exactly one succeeds,
    the rest get 412, and the stored document is the winner's."""
    client = backplane_client
    one = {"activityId": ACTIVITY, "profileId": "counter"}
    assert send(client, "PUT", ACTIVITY_PROFILE, lrs, one, {"n": 0}).status_code == 204
    etag = send(client, "GET", ACTIVITY_PROFILE, lrs, one).headers["ETag"]

    def write(n: int) -> int:
        headers = {"If-Match": etag}
        answer = send(client, "PUT", ACTIVITY_PROFILE, lrs, one, {"n": n + 1}, **headers)
        return int(answer.status_code)

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(write, range(8)))
    assert sorted(statuses) == [204] + [412] * 7
    winner = statuses.index(204) + 1
    assert send(client, "GET", ACTIVITY_PROFILE, lrs, one).json() == {"n": winner}

    def create(n: int) -> int:
        fresh = {"activityId": ACTIVITY, "profileId": "first"}
        headers = {"If-None-Match": "*"}
        return int(
            send(client, "PUT", ACTIVITY_PROFILE, lrs, fresh, {"n": n}, **headers).status_code
        )

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(create, range(8)))
    assert sorted(created) == [204] + [412] * 7
