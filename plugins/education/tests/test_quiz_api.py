"""Quizzes over HTTP: an instructor builds a bank and a quiz, a learner fails then passes it,
and (acceptance 3) no response the learner receives carries any part of the answer key."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from quiz_helpers import (
    ACCEPTED,
    BANKS,
    LEARN,
    NUMERIC_KEY,
    QUESTIONS,
    QUIZZES,
    Recorder,
    answers_for,
    key_fields_in,
    learner,
    make_bank,
    make_quiz,
    parsed,
)

from backplane.testing import SeededTenant, audit_trail, set_quota, usage_of


def take(who: Recorder, quiz_id: str, *, right: bool) -> dict[str, Any]:
    started = who.call("POST", f"{LEARN}/quizzes/{quiz_id}/attempts")
    assert started.status_code == 201, started.text
    attempt = started.json()
    for position, answer in answers_for(attempt, right=right).items():
        saved = who.call("PUT", f"{LEARN}/attempts/{attempt['id']}/answers/{position}", answer)
        assert saved.status_code == 200, saved.text
    assert who.call("GET", f"{LEARN}/attempts/{attempt['id']}").status_code == 200
    submitted = who.call("POST", f"{LEARN}/attempts/{attempt['id']}/submit")
    assert submitted.status_code == 200, submitted.text
    return dict(submitted.json())


def test_journey_fail_then_pass_and_no_key_reaches_the_learner(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, passing_score=70, max_attempts=3)
    who = Recorder(client, learner(client, backplane_tenant.slug))

    info = who.call("GET", f"{LEARN}/quizzes/{quiz_id}").json()
    assert (info["attempts_used"], info["passed"], info["max_attempts"]) == (0, False, 3)

    failed = take(who, quiz_id, right=False)
    assert failed["status"] == "submitted"
    assert failed["score"]["passed"] is False
    assert failed["score"]["percent"] == 0.0
    outcomes = {q["outcome"] for q in failed["score"]["questions"]}
    assert outcomes == {"incorrect"}
    single = next(q for q in failed["questions"] if q["type"] == "single")
    feedback = failed["score"]["questions"][single["position"]]["feedback"]
    assert feedback == ["Mars is small.", "Look at the gas giants."]

    passed = take(who, quiz_id, right=True)
    assert passed["score"]["passed"] is True
    assert passed["score"]["percent"] == 100.0
    assert passed["score"]["points_possible"] == 8.0
    assert passed["number"] == 2
    # another attempt draws its own option tokens
    first_ids = {o["id"] for q in failed["questions"] for o in q.get("options", [])}
    second_ids = {o["id"] for q in passed["questions"] for o in q.get("options", [])}
    assert first_ids.isdisjoint(second_ids)

    mine = who.call("GET", f"{LEARN}/quizzes/{quiz_id}/attempts").json()
    assert [(a["number"], a["passed"]) for a in mine] == [(1, False), (2, True)]
    info = who.call("GET", f"{LEARN}/quizzes/{quiz_id}").json()
    assert (info["attempts_used"], info["passed"], info["best_percent"]) == (2, True, 100.0)
    # what an instructor sees of the same attempts
    summaries = client.get(f"{QUIZZES}/{quiz_id}/attempts").json()
    assert sorted(a["percent"] for a in summaries) == [0.0, 100.0]
    stats = client.get(f"{QUIZZES}/{quiz_id}/stats").json()
    assert (stats["attempts"], stats["learners"], stats["learners_passed"]) == (2, 1, 1)
    assert (stats["average_percent"], stats["pass_rate"]) == (50.0, 0.5)
    assert len(stats["questions"]) == len(QUESTIONS)
    assert {q["average_score"] for q in stats["questions"]} == {0.5}
    assert usage_of(client, backplane_tenant, "education.quiz_attempts") == 2
    assert len(audit_trail(client, backplane_tenant, "education.quiz_attempt_submitted")) == 2

    # the learner may not read keys or anyone's attempts
    for method, url in [
        ("GET", f"{BANKS}/{bank_id}/questions"),
        ("GET", f"{QUIZZES}/{quiz_id}"),
        ("GET", f"{QUIZZES}/{quiz_id}/attempts"),
        ("GET", f"{QUIZZES}/{quiz_id}/stats"),
    ]:
        assert who.call(method, url).status_code == 403

    # Acceptance 3: scan every response the learner received.
    assert len(who.responses) > 20
    key_values = [str(NUMERIC_KEY), *ACCEPTED[1:]]
    for method, url, status, text in who.responses:
        body = parsed(text)
        assert not key_fields_in(body), (method, url, status, key_fields_in(body))
        for value in key_values:
            assert value not in text, (method, url, value)
    # the instructor does see the key
    questions = client.get(f"{BANKS}/{bank_id}/questions").json()
    assert {q["question"]["type"] for q in questions} == {q["type"] for q in QUESTIONS}
    assert any(key_fields_in(q) for q in questions)


def test_bad_input_is_refused_with_a_clear_4xx(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, question_ids = make_bank(client)
    bad_questions = [
        {"type": "single", "prompt": "p", "choices": [{"text": "a"}, {"text": "b"}]},
        {"type": "essay", "prompt": "p"},
        {"type": "numeric", "prompt": "p", "answer": "x"},
    ]
    for question in bad_questions:
        answer = client.post(f"{BANKS}/{bank_id}/questions", json={"question": question})
        assert answer.status_code == 400, answer.text
        assert answer.json()["detail"]
    assert client.post(BANKS, json={"name": "science"}).status_code == 409
    missing = "00000000-0000-0000-0000-000000000000"
    bad_quizzes = [
        ({"title": "q", "draws": []}, 400),
        ({"title": "q", "draws": [{"bank_id": bank_id, "question_ids": question_ids}]}, 400),
        ({"title": "q", "draws": [{"bank_id": missing}]}, 404),
        ({"title": "q", "draws": [{"question_ids": [missing]}]}, 404),
        ({"title": "q", "draws": [{"bank_id": bank_id}], "passing_score": 101}, 400),
        ({"title": "q", "draws": [{"bank_id": bank_id}], "time_limit_s": 1}, 400),
    ]
    for body, status in bad_quizzes:
        answer = client.post(QUIZZES, json=body)
        assert answer.status_code == status, (body, answer.text)

    draft = make_quiz(client, bank_id, published=False)
    quiz_id = make_quiz(client, bank_id)
    who = learner(client, backplane_tenant.slug)
    assert client.get(f"{LEARN}/quizzes/{draft}", headers=who).status_code == 404
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    url = f"{LEARN}/attempts/{attempt['id']}"
    single = next(q for q in attempt["questions"] if q["type"] == "single")
    numeric = next(q for q in attempt["questions"] if q["type"] == "numeric")
    refused = [
        (f"{url}/answers/{single['position']}", {"type": "numeric", "value": 1}, 400),
        (f"{url}/answers/{single['position']}", {"type": "single", "choice": "zzz"}, 400),
        (f"{url}/answers/{numeric['position']}", {"type": "numeric", "value": "NaN"}, 400),
        (f"{url}/answers/99", {"type": "true_false", "value": True}, 404),
    ]
    for target, body, status in refused:
        answer = client.put(target, json=body, headers=who)
        assert answer.status_code == status, (body, answer.text)
    again = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert again.status_code == 409
    assert again.json()["extra"]["attempt_id"] == attempt["id"]
    # another learner cannot read or answer this attempt
    other = learner(client, backplane_tenant.slug)
    assert client.get(url, headers=other).status_code == 404
    assert client.post(f"{url}/submit", headers=other).status_code == 404
    assert client.post(f"{url}/submit", headers=who).status_code == 200
    assert client.post(f"{url}/submit", headers=who).status_code == 409
    late = client.put(f"{url}/answers/0", json={"type": "true_false", "value": True}, headers=who)
    assert late.status_code == 409


def test_editing_a_question_keeps_started_attempts_on_their_snapshot(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank = client.post(BANKS, json={"name": "one"}).json()
    made = client.post(
        f"{BANKS}/{bank['id']}/questions",
        json={"question": {"type": "true_false", "prompt": "Sky is blue?", "answer": True}},
    ).json()
    quiz_id = make_quiz(client, bank["id"])
    who = learner(client, backplane_tenant.slug)
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    edited = client.put(
        f"{API_QUESTIONS}/{made['id']}",
        json={"question": {"type": "true_false", "prompt": "Sky is green?", "answer": False}},
    )
    assert edited.json()["revision"] == 2
    url = f"{LEARN}/attempts/{attempt['id']}"
    client.put(f"{url}/answers/0", json={"type": "true_false", "value": True}, headers=who)
    result = client.post(f"{url}/submit", headers=who).json()
    assert result["questions"][0]["prompt"] == "Sky is blue?"
    assert result["score"]["passed"] is True
    fresh = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    assert fresh["questions"][0]["prompt"] == "Sky is green?"


API_QUESTIONS = "/api/education/quiz-questions"


def test_a_spent_attempt_quota_refuses_a_start_without_making_an_attempt(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id)
    set_quota(client, backplane_tenant, "education.quiz_attempts", 1, hard=True)
    who = learner(client, backplane_tenant.slug)
    first = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert first.status_code == 201, first.text
    client.post(f"{LEARN}/attempts/{first.json()['id']}/submit", headers=who)
    refused = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert refused.status_code == 429, refused.text
    mine = client.get(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    assert [a["number"] for a in mine] == [1]
