"""Statement queries page in ``stored`` order (xAPI 1.0.3 Part Three 2.1.3), with ``seq``
breaking ties: the statements of one batch share their ``stored``, and ``more`` pages must
neither repeat nor skip one of them, whichever filter (a related key's index included) and
direction; ``until`` and ``since`` bound ``stored`` whatever order the rows were written in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, update
from xapi_helpers import ATTEMPTED, COMPLETED, STATEMENTS, credential, new_id, statement

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, invoke_cli, run_in_tenant
from backplane_education.xapi.models import XapiStatement, XapiStatementRef
from backplane_education.xapi.reader import decode_more

Client = TestClient[Litestar]
PARENT = "http://example.org/course/parent"


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


def pages(client: Client, auth: dict[str, str], **params: str) -> list[list[str]]:
    """The ids of every page of a query, following ``more``."""
    found: list[list[str]] = []
    answer = client.get(STATEMENTS, params=params, headers=auth)
    while True:
        assert answer.status_code == 200, answer.text
        found.append([s["id"] for s in answer.json()["statements"]])
        more = answer.json()["more"]
        if not more:
            return found
        answer = client.get(more, headers=auth)


def flat(found: list[list[str]]) -> list[str]:
    return [statement_id for page in found for statement_id in page]


def batch(size: int, verb: str) -> list[dict[str, Any]]:
    context = {"contextActivities": {"parent": [{"id": PARENT}]}}
    return [statement(verb=verb, context=context) for _ in range(size)]


def test_pages_across_statements_sharing_their_stored(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    first = client.post(STATEMENTS, json=batch(5, COMPLETED), headers=lrs).json()
    second = client.post(STATEMENTS, json=batch(4, ATTEMPTED), headers=lrs).json()
    stored = {
        s["stored"]
        for s in client.get(STATEMENTS, params={"limit": "20"}, headers=lrs).json()["statements"]
    }
    assert len(stored) <= 2  # one stored per batch: ties that only seq orders
    everything = first + second
    newest_first = pages(client, lrs, limit="2")
    assert [len(p) for p in newest_first] == [2, 2, 2, 2, 1]
    assert flat(newest_first) == everything[::-1]
    assert flat(pages(client, lrs, limit="3", ascending="true")) == everything
    # the page boundary falls inside a batch, on the statement row's indexes and on a related
    # key's index (which carries stored too)
    assert flat(pages(client, lrs, limit="2", verb=COMPLETED)) == first[::-1]
    assert flat(pages(client, lrs, limit="3", verb=ATTEMPTED, ascending="true")) == second
    related = {"activity": PARENT, "related_activities": "true"}
    assert flat(pages(client, lrs, limit="4", **related)) == everything[::-1]
    assert flat(pages(client, lrs, limit="2", ascending="true", **related)) == everything
    both = flat(pages(client, lrs, limit="2", verb=ATTEMPTED, **related))
    assert both == second[::-1]


def test_the_more_token_carries_the_position_and_bad_ones_are_refused(
    backplane_client: Client, lrs: dict[str, str]
) -> None:
    client = backplane_client
    client.post(STATEMENTS, json=batch(3, COMPLETED), headers=lrs)
    more = client.get(STATEMENTS, params={"limit": "1"}, headers=lrs).json()["more"]
    query, (stored, seq) = decode_more(more.split("more=", 1)[1])
    assert query.limit == 1
    assert isinstance(stored, datetime)
    assert seq > 0
    for token in ("nope", "W10", more.split("more=", 1)[1][:-4]):
        answer = client.get(STATEMENTS, params={"more": token}, headers=lrs)
        assert answer.status_code == 400, token


def test_order_and_until_follow_stored_not_the_order_rows_were_written(
    backplane_client: Client, lrs: dict[str, str], backplane_tenant: SeededTenant
) -> None:
    """A statement written later with an earlier ``stored`` (as a concurrent transaction that
    commits late would leave it) sorts by its ``stored``, in the related keys' index too."""
    client = backplane_client
    early, late = new_id(), new_id()
    for statement_id in (early, late):
        made = batch(1, COMPLETED)[0] | {"id": statement_id}
        assert client.post(STATEMENTS, json=made, headers=lrs).status_code == 200
    moment = datetime.now(UTC) - timedelta(days=2)

    async def backdate(kernel: Any) -> None:
        found = XapiStatement.statement_id == uuid.UUID(late)
        seq = await kernel.db.scalar(select(XapiStatement.seq).where(found))
        await kernel.db.execute(update(XapiStatement).where(found).values(stored=moment))
        await kernel.db.execute(
            update(XapiStatementRef).where(XapiStatementRef.seq == seq).values(stored=moment)
        )

    run_in_tenant(client, backplane_tenant, backdate, plugin="education")
    assert flat(pages(client, lrs, limit="1")) == [early, late]
    assert flat(pages(client, lrs, limit="1", ascending="true")) == [late, early]
    until = (moment + timedelta(hours=1)).isoformat()
    assert flat(pages(client, lrs, until=until)) == [late]
    assert flat(pages(client, lrs, until=until, activity=PARENT, related_activities="true")) == [
        late
    ]
    assert flat(pages(client, lrs, since=until)) == [early]
    assert flat(pages(client, lrs, limit="1", activity=PARENT, related_activities="true")) == [
        early,
        late,
    ]


def test_the_migration_gives_stored_statements_related_keys_their_stored(
    backplane_client: Client, lrs: dict[str, str], backplane_environ: dict[str, str]
) -> None:
    """Statements stored before ``education_0005`` page by their related keys after it: the
    migration copies each statement's ``stored`` onto its related keys."""
    client = backplane_client
    first = client.post(STATEMENTS, json=batch(2, COMPLETED), headers=lrs).json()
    second = client.post(STATEMENTS, json=batch(2, ATTEMPTED), headers=lrs).json()
    down = invoke_cli("db", "downgrade", "education_0004", environ=backplane_environ)
    assert down.exit_code == 0, down.output
    up = invoke_cli("db", "upgrade", environ=backplane_environ)
    assert up.exit_code == 0, up.output
    related = {"activity": PARENT, "related_activities": "true"}
    assert flat(pages(client, lrs, limit="3", **related)) == (first + second)[::-1]
    assert flat(pages(client, lrs, limit="1", ascending="true", **related)) == first + second
