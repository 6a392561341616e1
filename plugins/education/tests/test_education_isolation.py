"""Acceptance 5 (the plugin's part): tenant B cannot see or touch anything of tenant A through
any route of the plugin, on SQLite (the session's tenant filter) and on PostgreSQL (row-level
security, as the application role); a learner's export holds their enrolments and progress and
their erasure removes them (seats given back), leaving everyone else's."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, COURSES, MP4, member, ok, text_course, upload

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, seed_tenant


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


def a_state(client: Any, learner: dict[str, str]) -> dict[str, Any]:
    return {
        "courses": ok(client.get(COURSES, params={"drafts": True})),
        "admin": ok(client.get(f"{API}/dashboard/admin")),
        "learner": ok(client.get(f"{API}/dashboard/learner", headers=learner)),
    }


def test_tenant_b_reaches_nothing_of_tenant_a(
    backplane_client: Any, backplane_tenant: SeededTenant, backplane_plugins: Any
) -> None:
    client = backplane_client
    lea = member(client, backplane_tenant, "lea")
    course = text_course(client, title="Acme onboarding", seat_limit=10)
    draft = ok(client.post(COURSES, json={"title": "Acme secret draft"}), 201)
    video = upload(client, MP4, "a.mp4")
    module_id = course["module_id"]
    ok(client.post(f"{COURSES}/{course['id']}/versions"), 201)  # draft version 2
    v2 = ok(client.get(f"{COURSES}/{course['id']}/outline", params={"version": 2}))
    module_v2 = v2["modules"][0]["id"]
    video_lesson = ok(
        client.post(
            f"{API}/modules/{module_v2}/lessons",
            json={"kind": "video", "title": "v", "file_id": video, "duration_s": 10},
        ),
        201,
    )
    now = datetime.now(UTC)
    cohort = ok(
        client.post(
            f"{COURSES}/{course['id']}/cohorts",
            json={
                "name": "Acme cohort",
                "starts_at": now.isoformat(),
                "ends_at": (now + timedelta(days=9)).isoformat(),
            },
        ),
        201,
    )
    enrolment = ok(
        client.post(
            f"{COURSES}/{course['id']}/enrol",
            json={"cohort_id": cohort["id"]},
            headers=lea["headers"],
        ),
        201,
    )
    lesson = course["lessons"][0]
    ok(client.post(f"{API}/lessons/{lesson}/complete", headers=lea["headers"]), 201)
    before = a_state(client, lea["headers"])

    b = seed_tenant(backplane_plugins, "globex").headers
    c, d, e = course["id"], draft["id"], enrolment["id"]
    a_user = lea["user_id"]
    attempts: list[tuple[str, str, Any]] = [
        ("GET", f"{COURSES}/{c}", None),
        ("GET", f"{COURSES}/{d}", None),
        ("PATCH", f"{COURSES}/{c}", {"title": "pwned"}),
        ("DELETE", f"{COURSES}/{c}", None),
        ("GET", f"{COURSES}/{c}/outline", None),
        ("GET", f"{COURSES}/{c}/versions", None),
        ("POST", f"{COURSES}/{c}/versions", None),
        ("POST", f"{COURSES}/{c}/versions/2/publish", None),
        ("POST", f"{COURSES}/{c}/versions/2/modules", {"title": "x"}),
        ("GET", f"{COURSES}/{c}/instructors", None),
        ("PUT", f"{COURSES}/{c}/instructors/{a_user}", None),
        ("DELETE", f"{COURSES}/{c}/instructors/{a_user}", None),
        ("PATCH", f"{API}/modules/{module_id}", {"title": "x"}),
        ("DELETE", f"{API}/modules/{module_v2}", None),
        ("POST", f"{API}/modules/{module_v2}/lessons", {"kind": "text", "title": "x", "body": "x"}),
        ("GET", f"{API}/lessons/{lesson}", None),
        ("PUT", f"{API}/lessons/{video_lesson['id']}", {"kind": "text", "title": "x", "body": "x"}),
        ("DELETE", f"{API}/lessons/{video_lesson['id']}", None),
        ("POST", f"{API}/lessons/{lesson}/start", None),
        ("POST", f"{API}/lessons/{lesson}/complete", None),
        ("POST", f"{API}/lessons/{video_lesson['id']}/heartbeat", {"position_s": 1}),
        ("POST", f"{COURSES}/{c}/enrol", None),
        ("POST", f"{COURSES}/{c}/enrolments", {"user_id": a_user}),
        ("POST", f"{COURSES}/{c}/enrolments/bulk", None),
        ("GET", f"{COURSES}/{c}/enrolments", None),
        ("GET", f"{API}/enrolments/{e}", None),
        ("POST", f"{API}/enrolments/{e}/unenrol", None),
        ("POST", f"{API}/enrolments/{e}/move", {"version": 1}),
        (
            "POST",
            f"{COURSES}/{c}/cohorts",
            {
                "name": "x",
                "starts_at": now.isoformat(),
                "ends_at": (now + timedelta(days=1)).isoformat(),
            },
        ),
        ("GET", f"{COURSES}/{c}/cohorts", None),
        ("GET", f"{API}/me/courses/{c}/progress", None),
        ("GET", f"{COURSES}/{c}/dashboard", None),
    ]
    for method, path, body in attempts:
        kwargs: dict[str, Any] = {"headers": b}
        if body is not None:
            kwargs["json"] = body
        if path.endswith("/bulk"):
            kwargs["content"] = f"user_id\n{a_user}\n".encode()
        answer = client.request(method, path, **kwargs)
        # 404 (not found), or 403 where B's key acts for no user: never a success
        assert answer.status_code in (403, 404), (method, path, answer.status_code, answer.text)
        assert "Acme" not in answer.text
    # B's own lists are empty of A's
    assert ok(client.get(COURSES, params={"drafts": True}, headers=b)) == []
    admin = ok(client.get(f"{API}/dashboard/admin", headers=b))
    assert (admin["courses"], admin["enrolments"]["active"]) == (0, 0)
    prereq = client.post(COURSES, json={"title": "x", "prerequisite_ids": [c]}, headers=b)
    assert prereq.status_code == 400  # A's course is no course to B
    assert a_state(client, lea["headers"]) == before


def test_a_learners_export_and_erasure(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    lea = member(client, backplane_tenant, "lea")
    max_ = member(client, backplane_tenant, "max")
    course = text_course(client, title="Privacy 101", seat_limit=5)
    for person in (lea, max_):
        ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=person["headers"]), 201)
        url = f"{API}/lessons/{course['lessons'][0]}/complete"
        ok(client.post(url, headers=person["headers"]), 201)
    assert ok(client.get(f"{COURSES}/{course['id']}"))["seats_taken"] == 2

    exported = client.post("/api/privacy/export", json={"user_id": lea["user_id"]})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        entries = {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.startswith("education/")
        }
    enrolments = entries["education/education_enrolments.jsonl"]
    assert [(r["user_id"], r["course_id"]) for r in enrolments] == [(lea["user_id"], course["id"])]
    progress = entries["education/education_lesson_progress.jsonl"]
    assert [r["lesson_id"] for r in progress] == [course["lessons"][0]]
    assert {r["user_id"] for r in progress} == {lea["user_id"]}

    erased = client.post("/api/privacy/erase", json={"user_id": lea["user_id"]})
    assert erased.status_code == 200, erased.text
    report = erased.json()["plugins"]["education"]
    assert report["education_enrolments"] == 1
    assert report["education_lesson_progress"] == 1
    # her seat is back; max's enrolment and progress are untouched
    assert ok(client.get(f"{COURSES}/{course['id']}"))["seats_taken"] == 1
    left = ok(client.get(f"{COURSES}/{course['id']}/enrolments"))
    assert [r["user_id"] for r in left] == [max_["user_id"]]
    funnel = ok(client.get(f"{COURSES}/{course['id']}/dashboard"))
    assert (funnel["enrolled"], funnel["lessons"][0]["completed"]) == (1, 1)
    again = client.post("/api/privacy/export", json={"user_id": max_["user_id"]})
    with zipfile.ZipFile(io.BytesIO(again.content)) as archive:
        names = archive.namelist()
        rows = archive.read("education/education_enrolments.jsonl").decode()
    assert "education/education_enrolments.jsonl" in names
    assert lea["user_id"] not in rows
    gone = client.post("/api/privacy/export", json={"email": lea["email"]})
    assert gone.status_code == 200, gone.text
    with zipfile.ZipFile(io.BytesIO(gone.content)) as archive:
        # the record store still looks for statements naming her mailbox: it finds none
        leftover = {
            n: archive.read(n).strip() for n in archive.namelist() if n.startswith("education/")
        }
    assert set(leftover) <= {"education/xapi_statements.jsonl", "education/xapi_documents.jsonl"}
    assert not any(leftover.values()), leftover
