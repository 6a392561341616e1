"""Acceptance 5 (data rights): a learner's export holds their enrolment, lesson progress, quiz
attempts, the xAPI statements and documents naming them and their certificate; their erasure
removes all of it (the certificate's document too, through the documents plugin) and leaves
another learner's untouched. On SQLite and on PostgreSQL (row-level security on)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from certificate_helpers import certificate_template
from education_helpers import API, COURSES, member, ok
from quiz_helpers import LEARN, QUIZZES, answers_for, make_bank, make_quiz
from sqlalchemy import Uuid, column, func, select, table
from xapi_helpers import STATEMENTS, credential, statement

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, run_in_tenant

STATE = "/xapi/activities/state"
ACTIVITY = "http://example.org/course/erasure"
PERSONAL = (
    "education/education_enrolments.jsonl",
    "education/education_lesson_progress.jsonl",
    "education/education_quiz_attempts.jsonl",
    "education/education_certificates.jsonl",
    "education/xapi_statements.jsonl",
    "education/xapi_documents.jsonl",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education,documents",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def course_with_quiz(client: Any, quiz_id: str) -> dict[str, str]:
    course = ok(client.post(COURSES, json={"title": "Rights 101"}), 201)
    base = f"{COURSES}/{course['id']}/versions/1"
    module = ok(client.post(f"{base}/modules", json={"title": "M"}), 201)
    add = f"{API}/modules/{module['id']}/lessons"
    text = ok(client.post(add, json={"kind": "text", "title": "Read", "body": "read"}), 201)
    quiz = ok(client.post(add, json={"kind": "quiz", "title": "Q", "quiz_id": quiz_id}), 201)
    ok(client.post(f"{base}/publish"), 201)
    return {"id": course["id"], "text": text["id"], "quiz": quiz["id"]}


def learn(client: Any, course: dict[str, str], quiz_id: str, who: dict[str, Any]) -> None:
    """Enrol, read, fail then pass the quiz (completing the course), keep a State document."""
    headers = who["headers"]
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=headers), 201)
    ok(client.post(f"{API}/lessons/{course['text']}/complete", headers=headers), 201)
    for right in (False, True):
        started = ok(client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=headers), 201)
        url = f"{LEARN}/attempts/{started['id']}"
        for position, answer in answers_for(started, right=right).items():
            ok(client.put(f"{url}/answers/{position}", json=answer, headers=headers))
        ok(client.post(f"{url}/submit", headers=headers))


USER_TABLES = (
    "education_enrolments",
    "education_lesson_progress",
    "education_quiz_attempts",
    "education_certificates",
)


def rows_of(client: Any, tenant: SeededTenant, user_id: str) -> dict[str, int]:
    """How many rows of each per-learner table name ``user_id``."""

    user = uuid.UUID(user_id)

    async def count(kernel: Any) -> dict[str, int]:
        found = {}
        for name in USER_TABLES:
            rows = table(name, column("user_id", Uuid()))
            query = select(func.count()).select_from(rows).where(rows.c.user_id == user)
            found[name] = int(await kernel.db.scalar(query))
        return found

    return run_in_tenant(client, tenant, count, plugin="education")


def agent(email: str) -> str:
    return msgspec.json.encode({"objectType": "Agent", "mbox": f"mailto:{email}"}).decode()


def exported(client: Any, user_id: str) -> dict[str, list[dict[str, Any]]]:
    answer = client.post("/api/privacy/export", json={"user_id": user_id})
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        return {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.endswith(".jsonl")
        }


def test_export_then_erasure_of_a_learner(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    certificate_template(client)
    quiz_id = make_quiz(client, make_bank(client)[0], passing_score=75, max_attempts=3)
    course = course_with_quiz(client, quiz_id)
    lea, leo = member(client, backplane_tenant, "lea"), member(client, backplane_tenant, "leo")
    lrs = credential(client)
    for who in (lea, leo):
        learn(client, course, quiz_id, who)
        sent = client.post(STATEMENTS, json=statement(who["email"]), headers=lrs)
        assert sent.status_code == 200, sent.text
        where = {"activityId": ACTIVITY, "agent": agent(who["email"]), "stateId": "bookmark"}
        kept = client.put(STATE, params=where, json={"page": 3}, headers=lrs)
        assert kept.status_code == 204, kept.text
    assert len(ok(client.get(f"{COURSES}/{course['id']}/certificates"))) == 2

    mine = exported(client, lea["user_id"])
    for name in PERSONAL:
        assert mine.get(name), (name, sorted(mine))
    assert {r["user_id"] for r in mine["education/education_enrolments.jsonl"]} == {lea["user_id"]}
    assert len(mine["education/education_quiz_attempts.jsonl"]) == 2
    assert len(mine["education/education_certificates.jsonl"]) == 1
    # their own statement, and the platform's: registered, completed (lesson, course), ...
    assert len(mine["education/xapi_statements.jsonl"]) >= 4
    statements_text = json.dumps(mine["education/xapi_statements.jsonl"])
    assert leo["email"] not in statements_text
    assert leo["user_id"] not in statements_text

    erased = client.post("/api/privacy/erase", json={"user_id": lea["user_id"]})
    assert erased.status_code == 200, erased.text
    report = erased.json()["plugins"]
    assert report["education"]["education_certificates"] == 1
    assert report["education"]["education_quiz_attempts"] == 2
    assert report["education"]["xapi_documents"] == 1

    # no row of theirs is left (they are no member any more: counted in the database)
    assert rows_of(client, backplane_tenant, lea["user_id"]) == dict.fromkeys(USER_TABLES, 0)
    assert rows_of(client, backplane_tenant, leo["user_id"])["education_quiz_attempts"] == 2
    # through the API: only leo's rows are left
    enrolled = ok(client.get(f"{COURSES}/{course['id']}/enrolments"))
    assert [e["user_id"] for e in enrolled] == [leo["user_id"]]
    attempts = ok(client.get(f"{QUIZZES}/{quiz_id}/attempts"))
    assert {a["user_id"] for a in attempts} == {leo["user_id"]}
    issued = ok(client.get(f"{COURSES}/{course['id']}/certificates"))
    assert [c["user_id"] for c in issued] == [leo["user_id"]]
    documents = ok(client.get("/api/documents/documents"))
    assert [d["subject_email"] for d in documents] == [leo["email"]]
    for who, count in ((lea, 0), (leo, 1)):
        found = client.get(STATEMENTS, params={"agent": agent(who["email"])}, headers=lrs)
        assert len(found.json()["statements"]) == count
        account = {"objectType": "Agent", "account": {"homePage": "urn:backplane:users"}}
        account["account"]["name"] = who["user_id"]  # type: ignore[index]
        params = {"agent": msgspec.json.encode(account).decode()}
        platform = client.get(STATEMENTS, params=params, headers=lrs).json()["statements"]
        assert (len(platform) > 0) == bool(count), who["email"]
        where = {"activityId": ACTIVITY, "agent": agent(who["email"]), "stateId": "bookmark"}
        state = client.get(STATE, params=where, headers=lrs)
        assert state.status_code == (200 if count else 404), state.text
    assert (
        ok(client.get(f"{API}/me/certificates", headers=leo["headers"]))[0]["user_id"]
        == (leo["user_id"])
    )
