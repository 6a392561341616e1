"""Acceptance 1 (the plugin's part): an instructor builds and publishes a course with every
lesson kind, learners enrol, one watches part of the video through Range requests on its
signed URL (heartbeats feed progress), passes the quiz at the second attempt (reported as the
quizzes report it), completes the course; completion is metered and emitted as the
``education.course_completed`` event; the dashboards show the right numbers."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, COURSES, MP4, VTT, member, ok, upload
from sqlalchemy import text

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, run_in_tenant, usage_of
from backplane_education.progress import record_quiz_result


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        # heartbeats a few milliseconds apart may advance the video by one second
        "BACKPLANE_PLUGIN__EDUCATION__MAX_PLAYBACK_RATE": "2",
        **CHEAP_PASSWORD_HASHING,
    }


def build_course(client: Any, teacher: dict[str, str]) -> dict[str, Any]:
    """A course with one lesson of each kind (the quiz after the text lesson), published."""
    course = ok(
        client.post(
            COURSES,
            json={"title": "Video editing", "summary": "Cut, trim, export", "tags": ["video"]},
            headers=teacher,
        ),
        201,
    )
    base = f"{COURSES}/{course['id']}/versions/1"
    module = ok(client.post(f"{base}/modules", json={"title": "Basics"}, headers=teacher), 201)
    video_file = upload(client, MP4, "intro.mp4", teacher)
    captions = upload(client, VTT, "intro.vtt", teacher)
    handout = upload(client, b"%PDF-1.4\n% handout\n", "handout.pdf", teacher)
    add = f"{API}/modules/{module['id']}/lessons"
    lessons = {}
    specs = {
        "text": {"body": "# Welcome\n\n<script>alert(1)</script> [x](javascript:alert(1))"},
        "video": {
            "file_id": video_file,
            "captions_file_id": captions,
            "chapters": [{"start_s": 0, "title": "Start"}, {"start_s": 10, "title": "Trim"}],
            "duration_s": 20,
        },
        "file": {"file_id": handout},
        "link": {"url": "https://example.org/reading"},
    }
    for kind, extra in specs.items():
        made = client.post(add, json={"kind": kind, "title": kind, **extra}, headers=teacher)
        lessons[kind] = ok(made, 201)
    quiz = {"kind": "quiz", "title": "Check", "quiz_id": str(uuid.uuid4())}
    quiz["prerequisite_keys"] = [lessons["text"]["key"]]
    lessons["quiz"] = ok(client.post(add, json=quiz, headers=teacher), 201)
    ok(client.post(f"{base}/publish", headers=teacher), 201)
    return {"id": course["id"], "lessons": {k: v["id"] for k, v in lessons.items()}}


def beat(client: Any, lesson: str, headers: dict[str, str], position: float) -> dict[str, Any]:
    time.sleep(0.01)
    url = f"{API}/lessons/{lesson}/heartbeat"
    return ok(client.post(url, json={"position_s": position}, headers=headers), 201)  # type: ignore[no-any-return]


def test_the_journey(backplane_client: Any, backplane_tenant: SeededTenant) -> None:
    client = backplane_client
    teacher = member(client, backplane_tenant, "ines")
    lea = member(client, backplane_tenant, "lea")
    leo = member(client, backplane_tenant, "leo", role="viewer")
    course = build_course(client, teacher["headers"])
    lessons = course["lessons"]
    as_lea, as_leo = lea["headers"], leo["headers"]

    # the catalogue finds it; learners enrol themselves (open enrolment)
    found = ok(client.get(COURSES, params={"q": "trim export"}, headers=as_lea))
    assert [c["id"] for c in found] == [course["id"]]
    enrolment = ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=as_lea), 201)
    assert (enrolment["status"], enrolment["version"]) == ("active", 1)
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=as_leo), 201)
    again = client.post(f"{COURSES}/{course['id']}/enrol", headers=as_lea)
    assert again.status_code == 409, again.text

    # the text lesson is sanitised HTML; the quiz waits for it
    text_lesson = ok(client.get(f"{API}/lessons/{lessons['text']}", headers=as_lea))
    assert "<h1>Welcome</h1>" in text_lesson["html"]
    assert "<script" not in text_lesson["html"]
    assert 'href="javascript' not in text_lesson["html"]
    assert "&lt;script&gt;" in text_lesson["html"]  # shown as text, never run
    assert text_lesson["body"] is None  # the source is for editors
    blocked = client.get(f"{API}/lessons/{lessons['quiz']}", headers=as_lea)
    assert blocked.status_code == 409, blocked.text
    assert "text" in blocked.json()["detail"]

    # the video plays from its signed URL with Range requests, captions too
    video = ok(client.get(f"{API}/lessons/{lessons['video']}", headers=as_lea))
    assert video["media"]["content_type"] == "video/mp4"
    assert [c["title"] for c in video["chapters"]] == ["Start", "Trim"]
    part = client.get(video["media"]["url"], headers={"Range": "bytes=4-11", "Authorization": ""})
    assert part.status_code == 206, part.text
    assert part.content == MP4[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(MP4)}"
    captions = client.get(video["captions"]["url"], headers={"Authorization": ""})
    assert captions.content == VTT

    # heartbeats: 10 of 20 seconds watched; a seek forward is not watching
    for second in range(11):
        progress = beat(client, lessons["video"], as_lea, second)
    assert progress["watched_fraction"] == 0.5
    assert progress["completed_at"] is None
    assert progress["time_spent_s"] > 0
    progress = beat(client, lessons["video"], as_lea, 19)
    assert progress["watched_fraction"] == 0.5
    assert progress["position_s"] == 19
    for second in range(10, 20):
        progress = beat(client, lessons["video"], as_lea, second)
    assert progress["watched_fraction"] == 0.95
    assert progress["completed_at"] is not None
    refused = client.post(f"{API}/lessons/{lessons['video']}/complete", headers=as_lea)
    assert refused.status_code == 409

    for kind in ("text", "file", "link"):
        ok(client.post(f"{API}/lessons/{lessons[kind]}/complete", headers=as_lea), 201)
    ok(client.post(f"{API}/lessons/{lessons['text']}/complete", headers=as_leo), 201)
    mid = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=as_lea))
    assert (mid["status"], mid["percent"]) == ("active", 80.0)

    # the quiz: failed, then passed (as the quizzes report attempts)
    ok(client.get(f"{API}/lessons/{lessons['quiz']}", headers=as_lea))
    for score, passed in ((0.4, False), (0.85, True)):

        async def report(kernel: Any, score: float = score, passed: bool = passed) -> None:
            await record_quiz_result(
                kernel,
                lesson_id=uuid.UUID(lessons["quiz"]),
                user_id=uuid.UUID(lea["user_id"]),
                score=score,
                passed=passed,
            )

        run_in_tenant(client, backplane_tenant, report, plugin="education")
        status = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=as_lea))
        assert status["status"] == ("completed" if passed else "active")
    assert status["percent"] == 100.0
    assert status["completed_at"] is not None
    quiz_row = next(r for r in status["lessons"] if r["lesson_id"] == lessons["quiz"])
    assert (quiz_row["best_score"], quiz_row["passed"]) == (0.85, True)

    # completion: metered once, emitted for other plugins (a certificate, say)
    assert usage_of(client, backplane_tenant, "education.enrolments") == 2
    assert usage_of(client, backplane_tenant, "education.completions") == 1

    async def completions(kernel: Any) -> list[dict[str, Any]]:
        rows = await kernel.db.execute(
            text("SELECT payload FROM backplane_webhook_events WHERE type = :t"),
            {"t": "education.course_completed"},
        )
        return [json.loads(r[0])["data"] for r in rows]

    emitted = run_in_tenant(client, backplane_tenant, completions, plugin="education")
    assert [(e["course_id"], e["user_id"], e["title"]) for e in emitted] == [
        (course["id"], lea["user_id"], "Video editing")
    ]
    # without the documents plugin installed: the completion stands, and no certificate
    assert ok(client.get(f"{API}/me/certificates", headers=as_lea)) == []

    # dashboards: the learner's, the instructor's funnel, the admin's overview
    mine = ok(client.get(f"{API}/dashboard/learner", headers=as_lea))
    assert [(c["course_id"], c["status"], c["percent"]) for c in mine] == [
        (course["id"], "completed", 100.0)
    ]
    assert mine[0]["next_lesson_id"] is None
    assert mine[0]["time_spent_s"] > 0
    leo_board = ok(client.get(f"{API}/dashboard/learner", headers=as_leo))
    assert leo_board[0]["next_lesson_id"] == lessons["video"]
    funnel = ok(client.get(f"{COURSES}/{course['id']}/dashboard", headers=teacher["headers"]))
    assert (funnel["enrolled"], funnel["started"], funnel["completed"]) == (2, 2, 1)
    assert funnel["average_percent"] == 60.0  # 100 and 20
    by_kind = {row["kind"]: row for row in funnel["lessons"]}
    assert [row["kind"] for row in funnel["lessons"]] == ["text", "video", "file", "link", "quiz"]
    assert (by_kind["text"]["started"], by_kind["text"]["completed"]) == (2, 2)
    assert by_kind["text"]["stopped_after"] == 1  # leo, still in the course
    assert (by_kind["video"]["started"], by_kind["video"]["completed"]) == (1, 1)
    assert by_kind["quiz"]["average_score"] == 0.85
    assert by_kind["text"]["average_score"] is None
    denied = client.get(f"{COURSES}/{course['id']}/dashboard", headers=as_lea)
    assert denied.status_code == 403
    admin = ok(client.get(f"{API}/dashboard/admin"))
    assert admin["enrolments"] == {"active": 1, "completed": 1, "unenrolled": 0}
    assert (admin["completions_30d"], admin["active_learners_30d"]) == (1, 2)
