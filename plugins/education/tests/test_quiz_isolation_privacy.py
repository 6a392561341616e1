"""Tenant isolation over every quiz route (SQLite's session filter; PostgreSQL reached as the
application role, row-level security on), and a learner's export and erasure."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from quiz_helpers import BANKS, LEARN, QUIZZES, answers_for, learner, make_bank, make_quiz

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, seed_tenant
from backplane_education.quizzes.routes import CONTROLLERS

QUESTIONS_URL = "/api/education/quiz-questions"


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


def _routes() -> set[tuple[str, str]]:
    """Every (method, path) the quiz controllers declare."""
    found = set()
    for controller in CONTROLLERS:
        for name in dir(controller):
            handler = getattr(controller, name)
            paths = getattr(handler, "paths", None)
            methods = getattr(handler, "http_methods", None)
            if not paths or not methods:
                continue
            for path in paths:
                for method in methods:
                    suffix = "" if path == "/" else path
                    found.add((method, f"/api/education{controller.path}{suffix}"))
    return found


def test_tenant_b_reaches_nothing_of_tenant_a(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant, backplane_plugins: Any
) -> None:
    client = backplane_client
    bank_id, question_ids = make_bank(client)
    quiz_id = make_quiz(client, bank_id, max_attempts=5)
    who = learner(client, backplane_tenant.slug)
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    b = seed_tenant(backplane_plugins, "globex").headers
    ids = {
        "bank_id": bank_id,
        "question_id": question_ids[0],
        "quiz_id": quiz_id,
        "attempt_id": attempt["id"],
        "position": "0",
    }
    bodies: dict[tuple[str, str], Any] = {
        ("POST", f"{BANKS}/{{bank_id}}/questions"): {
            "question": {"type": "true_false", "prompt": "p", "answer": True}
        },
        ("PUT", f"{QUESTIONS_URL}/{{question_id}}"): {
            "question": {"type": "true_false", "prompt": "p", "answer": True}
        },
        ("PUT", f"{QUIZZES}/{{quiz_id}}"): {"title": "x", "draws": [{"bank_id": bank_id}]},
        ("PUT", f"{LEARN}/attempts/{{attempt_id}}/answers/{{position}}"): {
            "type": "true_false",
            "value": True,
        },
    }
    walked = 0
    for method, template in sorted(_routes()):
        if "{" not in template:
            continue  # collection routes: checked below to list nothing of A's
        url = template
        for name, value in ids.items():
            url = url.replace(f"{{{name}:uuid}}", value).replace(f"{{{name}:int}}", value)
        kw: dict[str, Any] = {"headers": b}
        body = bodies.get((method, template.replace(":uuid", "").replace(":int", "")))
        if body is not None:
            kw["json"] = body
        answer = client.request(method, url, **kw)
        assert answer.status_code == 404, (method, url, answer.status_code, answer.text)
        walked += 1
    assert walked >= 14
    assert client.get(BANKS, headers=b).json() == []
    assert client.get(QUIZZES, headers=b).json() == []
    # B's own quiz cannot draw A's questions
    cross = client.post(
        QUIZZES, json={"title": "x", "draws": [{"question_ids": question_ids}]}, headers=b
    )
    assert cross.status_code == 404
    # A's data is untouched
    assert len(client.get(f"{BANKS}/{bank_id}/questions").json()) == len(question_ids)
    assert (
        client.get(f"{LEARN}/attempts/{attempt['id']}", headers=who).json()["status"]
        == "in_progress"
    )


def test_export_and_erasure_of_a_learner(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id)
    who = learner(client, backplane_tenant.slug)
    other = learner(client, backplane_tenant.slug)
    for person in (who, other):
        attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=person).json()
        for position, answer in answers_for(attempt, right=True).items():
            client.put(
                f"{LEARN}/attempts/{attempt['id']}/answers/{position}", json=answer, headers=person
            )
        client.post(f"{LEARN}/attempts/{attempt['id']}/submit", headers=person)
    user_id = client.get("/api/me", headers=who).json()["user_id"]

    exported = client.post("/api/privacy/export", json={"user_id": user_id})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        rows = [
            json.loads(line)
            for line in archive.read("education/education_quiz_attempts.jsonl").splitlines()
        ]
    assert [row["user_id"] for row in rows] == [user_id]
    assert rows[0]["percent"] == 100.0

    erased = client.post("/api/privacy/erase", json={"user_id": user_id})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["education"]["education_quiz_attempts"] == 1
    left = client.get(f"{QUIZZES}/{quiz_id}/attempts").json()
    assert len(left) == 1
    assert left[0]["user_id"] != user_id
