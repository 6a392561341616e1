"""A quiz inside a course: only learners following the course may start it (prerequisites
done), and graded attempts reach the lesson's progress — a pass completes the lesson and, under
the completion rule, the course."""

from __future__ import annotations

import re
from typing import Any

from education_helpers import API, COURSES, member, ok
from quiz_helpers import LEARN, QUIZZES, answers_for, make_bank, make_quiz

from backplane.testing import SeededTenant, usage_of


def course_with_quiz(client: Any, quiz_id: str) -> dict[str, Any]:
    """A published course: a text lesson, then a quiz lesson that needs it."""
    course = ok(client.post(COURSES, json={"title": "Science 101"}), 201)
    base = f"{COURSES}/{course['id']}/versions/1"
    module = ok(client.post(f"{base}/modules", json={"title": "M"}), 201)
    add = f"{API}/modules/{module['id']}/lessons"
    text = ok(client.post(add, json={"kind": "text", "title": "Read", "body": "read me"}), 201)
    quiz = ok(
        client.post(
            add,
            json={
                "kind": "quiz",
                "title": "Check",
                "quiz_id": quiz_id,
                "prerequisite_keys": [text["key"]],
            },
        ),
        201,
    )
    ok(client.post(f"{base}/publish"), 201)
    return {"id": course["id"], "text": text["id"], "quiz": quiz["id"]}


def attempt(client: Any, quiz_id: str, headers: dict[str, str], *, right: bool) -> dict[str, Any]:
    started = ok(client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=headers), 201)
    url = f"{LEARN}/attempts/{started['id']}"
    for position, answer in answers_for(started, right=right).items():
        ok(client.put(f"{url}/answers/{position}", json=answer, headers=headers))
    return ok(client.post(f"{url}/submit", headers=headers))  # type: ignore[no-any-return]


def test_a_course_quiz_gates_on_enrolment_and_completes_the_course(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, passing_score=75, max_attempts=3)
    course = course_with_quiz(client, quiz_id)
    lea = member(client, backplane_tenant, "lea")["headers"]
    start = f"{LEARN}/quizzes/{quiz_id}/attempts"

    outsider = client.post(start, headers=lea)
    assert outsider.status_code == 403, outsider.text
    assert "enrol" in outsider.json()["detail"]
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=lea), 201)
    waiting = client.post(start, headers=lea)
    assert waiting.status_code == 409, waiting.text
    assert "Read" in waiting.json()["detail"]
    ok(client.post(f"{API}/lessons/{course['text']}/complete", headers=lea), 201)

    failed = attempt(client, quiz_id, lea, right=False)
    assert failed["score"]["passed"] is False
    progress = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=lea))
    row = next(r for r in progress["lessons"] if r["lesson_id"] == course["quiz"])
    assert (row["best_score"], row["passed"], row["completed_at"]) == (0.0, False, None)
    assert progress["status"] == "active"

    passed = attempt(client, quiz_id, lea, right=True)
    assert passed["score"]["percent"] == 100.0
    progress = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=lea))
    row = next(r for r in progress["lessons"] if r["lesson_id"] == course["quiz"])
    assert (row["best_score"], row["passed"]) == (1.0, True)
    assert row["completed_at"] is not None
    assert (progress["status"], progress["percent"]) == ("completed", 100.0)
    assert usage_of(client, backplane_tenant, "education.completions") == 1


def test_demo_seed_gives_a_quiz_to_take(
    backplane_anonymous_client: Any, backplane_environ: dict[str, str]
) -> None:
    from test_education_plugin import backplane

    seeded = backplane(backplane_environ, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    key = re.search(r"API key \(shown once\): (\S+)", seeded.stdout)
    assert key is not None, seeded.stdout
    client = backplane_anonymous_client
    client.headers["Authorization"] = f"Bearer {key.group(1)}"
    quizzes = ok(client.get(QUIZZES))
    assert [(q["title"], q["published"]) for q in quizzes] == [("Backplane basics check", True)]
    attempt = ok(client.post(f"{LEARN}/quizzes/{quizzes[0]['id']}/attempts"), 201)
    assert len(attempt["questions"]) == 4
    assert attempt["seconds_left"] > 590
