"""Imports: CSV (sniffed delimiter, BOM, Latin-1, header mapping) and JSON lines; preview and
dry run report every bad row with its line and reason; the real import runs as outbox tasks,
chunk by chunk, upserting by normalised email with duplicates reported; a chunk that dies
half-way is redone whole (no row lost, none counted twice); exports stream CSV, audited."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import (
    CONTACTS,
    IMPORTS,
    all_contacts,
    define,
    environ_for,
    make_contact,
    make_list,
    upload,
)

from backplane.testing import SeededTenant, audit_trail, run_tasks

BAD_CSV = (
    "\ufeffEmail;Full name;score;Tags;notes\n"  # line 1: BOM, semicolons
    "ada@example.org;Ada;90;vip|beta;x\n"  # 2 good
    "not-an-email;Bob;10;;x\n"  # 3 invalid email
    "carol@example.org;Carol;high;;x\n"  # 4 wrong type
    'dan@example.org;"Dan;12;;x\n'  # 5 broken quoting (an unclosed quote)
    "eve@example.org;Eve;55;;x\n"  # 6 good (read again after line 5)
    "ADA@example.org;Ada again;1;;x\n"  # 7 duplicate of line 2
    "frank@example.org;Frank;12\n"  # 8 too few columns
    "grace@example.org;Grace;70;;x\n"  # 9 good
)
EXPECTED_BAD = [3, 4, 5, 7, 8]
GOOD = {"ada@example.org", "eve@example.org", "grace@example.org"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return environ_for(request, tmp_path) | {
        # small chunks and batches: several task runs and statements per test file
        "BACKPLANE_PLUGIN__MARKETING__IMPORT_CHUNK_ROWS": "3",
        "BACKPLANE_PLUGIN__MARKETING__IMPORT_BATCH_ROWS": "2",
        "BACKPLANE_PLUGIN__MARKETING__IMPORT_COPY_ROWS": "2",  # PostgreSQL's batches
    }


def start(client: TestClient[Litestar], file_id: str, **options: Any) -> dict[str, Any]:
    started = client.post(IMPORTS, json={"file_id": file_id, "options": options})
    assert started.status_code == 202, started.text
    run_tasks(client, timeout=60)
    job = client.get(f"{IMPORTS}/{started.json()['id']}")
    assert job.status_code == 200, job.text
    body: dict[str, Any] = job.json()
    return body


def test_bad_rows_are_reported_with_their_lines(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    define(client, "score", "number")
    file_id = upload(client, BAD_CSV.encode("utf-8"))
    preview = client.post(f"{IMPORTS}/preview", json={"file_id": file_id})
    assert preview.status_code == 200, preview.text
    plan = preview.json()["plan"]
    assert plan["delimiter"] == ";"
    assert plan["header"] == ["Email", "Full name", "score", "Tags", "notes"]
    assert plan["mapping"] == {
        "Email": "email",
        "Full name": "ignore",
        "score": "attributes.score",
        "Tags": "tags",
        "notes": "ignore",
    }
    mapping = dict(plan["mapping"], **{"Full name": "name"})
    first = preview.json()["rows"][0]
    assert first == {
        "line": 2,
        "email": "ada@example.org",
        "name": "",
        "attributes": {"score": 90},
        "tags": ["beta", "vip"],
    }

    dry = client.post(
        f"{IMPORTS}/dry-run", json={"file_id": file_id, "options": {"mapping": mapping}}
    )
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert [e["line"] for e in report["errors"]] == EXPECTED_BAD, report["errors"]
    reasons = {e["line"]: e["reason"] if "reason" in e else e["error"] for e in report["errors"]}
    assert "invalid email" in reasons[3]
    assert "not a number" in reasons[4]
    assert "quot" in reasons[5] or "CSV" in reasons[5]
    assert "duplicate email ada@example.org (line 2)" in reasons[7]
    assert "expected 5 columns, found 3" in reasons[8]
    assert (report["valid"], report["failed"]) == (3, 5)
    assert all_contacts(client) == []  # a dry run writes nothing

    job = start(client, file_id, mapping=mapping)
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"done": 3, "failed": 5, "total": 8, "fraction": 1.0}
    errors = client.get(f"{IMPORTS}/{job['id']}/errors").json()
    assert [e["line"] for e in errors] == EXPECTED_BAD
    contacts = {c["email"]: c for c in all_contacts(client)}
    assert set(contacts) == GOOD
    assert contacts["ada@example.org"]["name"] == "Ada"  # not "Ada again": line 7 was refused
    assert contacts["ada@example.org"]["tags"] == ["beta", "vip"]
    assert contacts["grace@example.org"]["attributes"] == {"score": 70}


def test_latin1_needs_its_encoding_and_upserts_keep_opt_outs(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    define(client, "city", "string")
    news = make_list(client, "news")
    existing = make_contact(
        client,
        "jose@example.org",
        attributes={"city": "Lisboa"},
        lists=[{"list_id": news, "status": "unsubscribed"}],
    )
    data = "email,name,country\njose@example.org,José,PT\nzoe@example.org,Zoë,FR\n"
    file_id = upload(client, data.encode("latin-1"))
    wrong = client.post(f"{IMPORTS}/dry-run", json={"file_id": file_id})
    assert [e["line"] for e in wrong.json()["errors"]] == [2, 3]
    assert "set `encoding`" in wrong.json()["errors"][0]["error"]
    bad_encoding = client.post(
        f"{IMPORTS}/preview", json={"file_id": file_id, "options": {"encoding": "klingon"}}
    )
    assert bad_encoding.status_code == 422
    assert "unknown encoding" in bad_encoding.json()["detail"]
    job = start(client, file_id, encoding="latin-1", list_id=news, tags=["imported"])
    assert job["progress"]["done"] == 2, job
    contacts = {c["email"]: c for c in all_contacts(client)}
    jose = contacts["jose@example.org"]
    assert jose["id"] == existing["id"]  # upserted, not duplicated
    assert jose["name"] == "José"
    assert jose["attributes"] == {"city": "Lisboa"}  # kept: the file has no city column
    assert jose["lists"][0]["status"] == "unsubscribed"  # an import never re-subscribes
    assert contacts["zoe@example.org"]["lists"][0]["status"] == "subscribed"
    assert contacts["zoe@example.org"]["tags"] == ["imported"]


def test_json_lines_and_mapping_errors(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    define(client, "score", "number")
    lines = [
        json.dumps({"email": "a@example.org", "name": "A", "attributes": {"score": 3}}),
        "{broken",
        json.dumps({"email": "b@example.org", "score": "x"}),
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"email": "c@example.org", "tags": ["t1", "t2"], "colour": "red"}),
        json.dumps({"email": "d@example.org", "tags": ["t1"]}),
    ]
    file_id = upload(client, "\n".join(lines).encode(), "contacts.jsonl")
    job = start(client, file_id, format="jsonl")
    errors = {e["line"]: e["reason"] for e in client.get(f"{IMPORTS}/{job['id']}/errors").json()}
    assert sorted(errors) == [2, 3, 5, 6], errors
    assert "not valid JSON" in errors[2]
    assert "not a number" in errors[3]
    assert "unknown field 'colour'" in errors[6]
    assert {c["email"] for c in all_contacts(client)} == {"a@example.org", "d@example.org"}
    csv_id = upload(client, b"mail,score\nx@example.org,1\n")
    for options, needle in (
        ({"mapping": {"mail": "email", "nope": "name"}}, "not in the header"),
        ({"mapping": {"mail": "email", "score": "attributes.missing"}}, "is not email, name"),
        ({"mapping": {"score": "attributes.score"}}, "no column is mapped to email"),
    ):
        answer = client.post(f"{IMPORTS}/preview", json={"file_id": csv_id, "options": options})
        assert answer.status_code == 422, answer.text
        assert needle in answer.json()["detail"]
    missing = client.post(
        f"{IMPORTS}/preview", json={"file_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert missing.status_code == 404


def test_a_chunk_that_dies_is_redone_whole(
    backplane_client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second chunk fails once after writing a batch (a worker dying mid-chunk): the retry
    redoes it from the committed offset; every row is imported once, counts are exact."""
    from backplane_marketing import import_job

    client = backplane_client
    rows = "".join(f"user{n}@example.org,User {n}\n" for n in range(10))
    file_id = upload(client, f"email,name\n{rows}user3@example.org,dup\n".encode())
    real = import_job.upsert_rows
    calls = {"n": 0}

    async def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        result = await real(*args, **kwargs)
        if calls["n"] == 4:  # the second batch of the second chunk
            raise ConnectionError("worker lost mid-chunk")
        return result

    monkeypatch.setattr(import_job, "upsert_rows", dying)
    started = client.post(IMPORTS, json={"file_id": file_id})
    run_tasks(client, timeout=60, allow_failures=False)
    job = client.get(f"{IMPORTS}/{started.json()['id']}").json()
    assert calls["n"] > 4  # the failed chunk ran again
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == 10
    assert job["progress"]["failed"] == 1
    errors = client.get(f"{IMPORTS}/{job['id']}/errors").json()
    assert errors == [
        {"line": 12, "reason": "duplicate email user3@example.org (an earlier line of this file)"}
    ]
    assert len(all_contacts(client)) == 10


def test_export_streams_csv_and_is_audited(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    define(client, "score", "number")
    for n in range(5):
        make_contact(
            client,
            f"e{n}@example.org",
            name=f"E{n}",
            attributes={"score": n * 10},
            tags=["x"] if n % 2 else [],
        )
    exported = client.get("/api/marketing/exports/contacts.csv")
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["email"] for r in rows] == [f"e{n}@example.org" for n in range(5)]
    assert rows[3]["score"] == "30"
    assert rows[3]["tags"] == "x"
    segment = client.post(
        "/api/marketing/segments",
        json={
            "name": "high",
            "filter": {"type": "attribute", "key": "score", "op": "gte", "value": 30},
        },
    )
    assert segment.status_code == 201, segment.text
    part = client.get(
        "/api/marketing/exports/contacts.csv", params={"segment_id": segment.json()["id"]}
    )
    assert [r["email"] for r in csv.DictReader(io.StringIO(part.text))] == [
        "e3@example.org",
        "e4@example.org",
    ]
    trail = audit_trail(client, backplane_tenant, "marketing.contacts_exported")
    assert len(trail) == 2
    viewer = client.get(CONTACTS)
    assert viewer.status_code == 200
