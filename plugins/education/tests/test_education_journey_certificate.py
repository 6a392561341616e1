"""Acceptances 1 and 3, end to end against a served app with the documents plugin installed:
an admin builds and publishes a course with every lesson kind and its quiz; a learner enrols,
watches part of the video through Range requests on its signed URL and heartbeats, takes the
quiz through the quiz routes (a late answer refused and a failed attempt, then a passing one,
then an extra attempt refused), completes the course and downloads their certificate; the
instructor's and the admin's dashboards show the right numbers; and no response the learner
received carries the answer key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from certificate_helpers import certificate_template
from education_helpers import API, COURSES, MP4, member, ok
from journey_helpers import LearnerClient, build_course, leaks
from quiz_helpers import LEARN, QUIZZES, answers_for, make_bank, make_quiz

import backplane_education.quizzes.attempts as attempts_module
from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, usage_of


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education,documents",
        # heartbeats a few milliseconds apart may advance the video by one second
        "BACKPLANE_PLUGIN__EDUCATION__MAX_PLAYBACK_RATE": "2",
        **CHEAP_PASSWORD_HASHING,
    }


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the quizzes' clock forward (attempt deadlines are checked against it)."""
    real, offset = attempts_module.utcnow, [0.0]
    monkeypatch.setattr(attempts_module, "utcnow", lambda: real() + timedelta(seconds=offset[0]))

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def answer_all(learner: LearnerClient, attempt: dict[str, Any], *, right: bool) -> None:
    url = f"{LEARN}/attempts/{attempt['id']}/answers"
    for position, answer in answers_for(attempt, right=right).items():
        ok(learner.put(f"{url}/{position}", json=answer))


def test_the_journey_to_a_certificate(
    backplane_client: Any, backplane_tenant: SeededTenant, clock: Callable[[float], None]
) -> None:
    client = backplane_client  # the tenant's owner: an admin
    certificate_template(client)
    bank_id, _ = make_bank(client)
    quiz_id = make_quiz(client, bank_id, passing_score=75, max_attempts=2, time_limit_s=600)
    course = build_course(client, quiz_id)
    lessons = course["lessons"]
    ines = member(client, backplane_tenant, "ines")
    put = client.put(f"{COURSES}/{course['id']}/instructors/{ines['user_id']}")
    assert put.status_code in (200, 201), put.text
    lea_member = member(client, backplane_tenant, "lea")
    lea = LearnerClient(client, lea_member["headers"])
    leo = LearnerClient(client, member(client, backplane_tenant, "leo", role="viewer")["headers"])

    # enrolment, the text lesson (the quiz waits for it)
    ok(lea.get(COURSES, params={"q": "trim export"}))
    assert ok(lea.post(f"{COURSES}/{course['id']}/enrol"), 201)["status"] == "active"
    ok(leo.post(f"{COURSES}/{course['id']}/enrol"), 201)
    ok(lea.get(f"{COURSES}/{course['id']}/outline"))
    assert lea.post(f"{LEARN}/quizzes/{quiz_id}/attempts").status_code == 409  # text first
    ok(lea.get(f"{API}/lessons/{lessons['text']}"))
    for learner in (lea, leo):
        ok(learner.post(f"{API}/lessons/{lessons['text']}/complete"), 201)

    # the video: Range requests on its signed URL, then heartbeats (a seek is not watching)
    video = ok(lea.get(f"{API}/lessons/{lessons['video']}"))
    part = lea.get(video["media"]["url"], headers={"Range": "bytes=4-11", "Authorization": ""})
    assert (part.status_code, part.content) == (206, MP4[4:12])
    assert part.headers["content-range"] == f"bytes 4-11/{len(MP4)}"
    tail = lea.get(video["media"]["url"], headers={"Range": "bytes=-6", "Authorization": ""})
    assert (tail.status_code, tail.content) == (206, MP4[-6:])
    for second in range(11):
        progress = lea.beat(lessons["video"], second)
    assert (progress["watched_fraction"], progress["completed_at"]) == (0.5, None)
    assert lea.beat(lessons["video"], 19)["watched_fraction"] == 0.5
    for second in range(10, 20):
        progress = lea.beat(lessons["video"], second)
    assert progress["watched_fraction"] == 0.95
    assert progress["completed_at"] is not None
    for kind in ("file", "link"):
        ok(lea.get(f"{API}/lessons/{lessons[kind]}"))
        ok(lea.post(f"{API}/lessons/{lessons[kind]}/complete"), 201)
    mid = ok(lea.get(f"{API}/me/courses/{course['id']}/progress"))
    assert (mid["status"], mid["percent"]) == ("active", 80.0)

    # the quiz, through its routes: wrong answers, time runs out, a late answer is refused
    ok(lea.get(f"{API}/lessons/{lessons['quiz']}"))
    assert ok(lea.get(f"{LEARN}/quizzes/{quiz_id}"))["attempts_used"] == 0
    first = ok(lea.post(f"{LEARN}/quizzes/{quiz_id}/attempts"), 201)
    answer_all(lea, first, right=False)
    clock(601 + 5)  # past the deadline and its grace
    right = answers_for(first, right=True)
    late = lea.put(f"{LEARN}/attempts/{first['id']}/answers/0", json=right[0])
    assert late.status_code == 409, late.text
    failed = ok(lea.post(f"{LEARN}/attempts/{first['id']}/submit"))
    assert (failed["late"], failed["score"]["passed"], failed["score"]["percent"]) == (
        True,
        False,
        0.0,
    )
    status = ok(lea.get(f"{API}/me/courses/{course['id']}/progress"))
    assert status["status"] == "active"
    second = ok(lea.post(f"{LEARN}/quizzes/{quiz_id}/attempts"), 201)
    answer_all(lea, second, right=True)
    passed = ok(lea.post(f"{LEARN}/attempts/{second['id']}/submit"))
    assert (passed["late"], passed["score"]["passed"], passed["score"]["percent"]) == (
        False,
        True,
        100.0,
    )
    extra = lea.post(f"{LEARN}/quizzes/{quiz_id}/attempts")
    assert extra.status_code == 409
    assert "no attempts left" in extra.json()["detail"]
    ok(lea.get(f"{LEARN}/attempts/{first['id']}"))
    mine = ok(lea.get(f"{LEARN}/quizzes/{quiz_id}/attempts"))
    assert [(a["number"], a["passed"]) for a in mine] == [(1, False), (2, True)]

    # completed: the course, then the certificate, issued through the documents plugin
    done = ok(lea.get(f"{API}/me/courses/{course['id']}/progress"))
    assert (done["status"], done["percent"]) == ("completed", 100.0)
    quiz_row = next(r for r in done["lessons"] if r["lesson_id"] == lessons["quiz"])
    assert (quiz_row["best_score"], quiz_row["passed"]) == (1.0, True)
    [certificate] = ok(lea.get(f"{API}/me/certificates"))
    assert certificate["course_id"] == course["id"]
    assert datetime.fromisoformat(certificate["completed_at"]) == datetime.fromisoformat(
        done["completed_at"]
    )
    pdf = lea.get(certificate["download"])
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    assert ok(leo.get(f"{API}/me/certificates")) == []
    assert usage_of(client, backplane_tenant, "education.completions") == 1
    assert usage_of(client, backplane_tenant, "documents.generated") == 1
    board = ok(lea.get(f"{API}/dashboard/learner"))
    assert [(c["status"], c["percent"]) for c in board] == [("completed", 100.0)]

    # the instructor's numbers (and the admin's)
    funnel = ok(client.get(f"{COURSES}/{course['id']}/dashboard", headers=ines["headers"]))
    assert (funnel["enrolled"], funnel["started"], funnel["completed"]) == (2, 2, 1)
    assert funnel["average_percent"] == 60.0  # 100 and 20
    by_kind = {row["kind"]: row for row in funnel["lessons"]}
    assert (by_kind["text"]["started"], by_kind["text"]["completed"]) == (2, 2)
    assert by_kind["text"]["stopped_after"] == 1  # leo
    assert (by_kind["video"]["started"], by_kind["video"]["completed"]) == (1, 1)
    assert (by_kind["quiz"]["completed"], by_kind["quiz"]["average_score"]) == (1, 1.0)
    issued = ok(client.get(f"{COURSES}/{course['id']}/certificates", headers=ines["headers"]))
    assert [c["user_id"] for c in issued] == [lea_member["user_id"]]
    stats = ok(client.get(f"{QUIZZES}/{quiz_id}/stats"))
    assert (stats["attempts"], stats["learners_passed"], stats["average_percent"]) == (2, 1, 50.0)
    admin = ok(client.get(f"{API}/dashboard/admin"))
    assert admin["enrolments"] == {"active": 1, "completed": 1, "unenrolled": 0}

    # Acceptance 3: nothing the learners received holds the key
    assert len(lea.responses) > 50
    assert leaks(lea.responses + leo.responses) == []
    instructor_view = LearnerClient(client, {})  # the scan finds a key where there is one
    ok(instructor_view.get(f"{API}/quiz-banks/{bank_id}/questions"))
    assert {what for _, _, what in leaks(instructor_view.responses)} >= {"answer", "accepted"}
