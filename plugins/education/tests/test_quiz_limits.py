"""Server-enforced limits: attempts per learner (also when starts race for the last one, on
SQLite and on PostgreSQL as the application role) and time limits (late answers refused, a late
submit graded as of the deadline, an abandoned attempt closed as timed out)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from quiz_helpers import LEARN, answers_for, learner, make_bank, make_quiz

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant
from backplane_education.quizzes import attempts as attempts_module


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


def finish(client: TestClient[Litestar], who: dict[str, str], quiz_id: str) -> None:
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert attempt.status_code == 201, attempt.text
    submitted = client.post(f"{LEARN}/attempts/{attempt.json()['id']}/submit", headers=who)
    assert submitted.status_code == 200, submitted.text


def test_concurrent_starts_at_the_limit_never_exceed_it(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, max_attempts=3)
    who = learner(client, backplane_tenant.slug)
    finish(client, who, quiz_id)
    finish(client, who, quiz_id)

    def start(_: int) -> Any:
        return client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(start, range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 5, [a.text for a in answers]
    mine = client.get(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    assert [a["number"] for a in mine] == [1, 2, 3]
    winner = next(a for a in answers if a.status_code == 201).json()
    client.post(f"{LEARN}/attempts/{winner['id']}/submit", headers=who)
    extra = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert extra.status_code == 409
    assert "no attempts left" in extra.json()["detail"]


def test_concurrent_first_starts_make_one_attempt(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id)
    who = learner(client, backplane_tenant.slug)
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(
            pool.map(
                lambda _: client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who), range(5)
            )
        )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 4, [a.text for a in answers]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the server's clock forward by some seconds (it reads ``utcnow`` of attempts)."""
    real = attempts_module.utcnow
    offset = [0.0]

    def shifted() -> datetime:
        return real() + timedelta(seconds=offset[0])

    monkeypatch.setattr(attempts_module, "utcnow", shifted)

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def test_time_limit_refuses_late_answers_and_grades_a_late_submit_as_of_the_deadline(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    clock: Callable[[float], None],
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, time_limit_s=60, passing_score=10)
    who = learner(client, backplane_tenant.slug)
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    # The deadline is fixed at the start; seconds_left is counted when the answer is built, so a
    # loaded machine may have spent a few seconds of it already (CI once saw 56.6).
    started = datetime.fromisoformat(attempt["started_at"])
    assert datetime.fromisoformat(attempt["deadline_at"]) - started == timedelta(seconds=60)
    assert 0 < attempt["seconds_left"] <= 60
    url = f"{LEARN}/attempts/{attempt['id']}"
    right = answers_for(attempt, right=True)
    positions = sorted(right)
    in_time = client.put(f"{url}/answers/{positions[0]}", json=right[positions[0]], headers=who)
    assert in_time.status_code == 200, in_time.text
    clock(61)  # within the grace period (2 s): still accepted
    assert (
        client.put(
            f"{url}/answers/{positions[1]}", json=right[positions[1]], headers=who
        ).status_code
        == 200
    )
    clock(5)  # past deadline + grace
    late = client.put(f"{url}/answers/{positions[2]}", json=right[positions[2]], headers=who)
    assert late.status_code == 409
    assert "time is up" in late.json()["detail"]
    result = client.post(f"{url}/submit", headers=who).json()
    assert result["late"] is True
    assert result["status"] == "submitted"
    answered = {q["position"]: q["outcome"] for q in result["score"]["questions"]}
    assert answered[positions[0]] == answered[positions[1]] == "correct"
    assert answered[positions[2]] == "unanswered"
    assert result["seconds_left"] is None


def test_an_abandoned_attempt_closes_as_timed_out_and_frees_the_next_start(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    clock: Callable[[float], None],
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, time_limit_s=30, max_attempts=2)
    who = learner(client, backplane_tenant.slug)
    first = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    assert client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).status_code == 409
    clock(40)
    second = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who)
    assert second.status_code == 201, second.text
    closed = client.get(f"{LEARN}/attempts/{first['id']}", headers=who).json()
    assert (closed["status"], closed["late"], closed["score"]["percent"]) == (
        "timed_out",
        True,
        0.0,
    )
    assert closed["submitted_at"] == closed["deadline_at"]


def test_answers_racing_a_submit_are_graded_exactly_when_they_were_accepted(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id)
    who = learner(client, backplane_tenant.slug)
    attempt = client.post(f"{LEARN}/quizzes/{quiz_id}/attempts", headers=who).json()
    url = f"{LEARN}/attempts/{attempt['id']}"
    right = answers_for(attempt, right=True)

    def act(position: int) -> tuple[int, Any]:
        if position < 0:
            return position, client.post(f"{url}/submit", headers=who)
        return position, client.put(f"{url}/answers/{position}", json=right[position], headers=who)

    jobs = [*sorted(right)[:3], -1, *sorted(right)[3:]]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = dict(pool.map(act, jobs))
    assert answers.pop(-1).status_code == 200
    assert {a.status_code for a in answers.values()} <= {200, 409}, [
        a.text for a in answers.values()
    ]
    final = client.get(url, headers=who).json()
    accepted = {p for p, a in answers.items() if a.status_code == 200}
    assert {int(p) for p in final["answers"]} == accepted
    graded = {q["position"] for q in final["score"]["questions"] if q["outcome"] != "unanswered"}
    assert graded == accepted
