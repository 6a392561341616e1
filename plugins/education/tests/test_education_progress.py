"""Progress: heartbeat arithmetic (watched ranges merged, seeks and stale gaps not counted),
bad heartbeats refused, first touches of a lesson at once making one row, and lessons of a
course one is not enrolled in refused."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, COURSES, MP4, member, ok, text_course, upload

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant
from backplane_education.progress import covered, merge_ranges


def test_watched_ranges_merge_and_cover() -> None:
    ranges = merge_ranges([], 0, 5)
    ranges = merge_ranges(ranges, 10, 12)
    assert ranges == [[0, 5], [10, 12]]
    ranges = merge_ranges(ranges, 4, 10.5)
    assert ranges == [[0, 12]]
    assert covered(ranges, 24) == 0.5
    assert covered([[0, 30]], 20) == 1.0  # never past the end
    assert covered([[1, 2]], 0) == 0.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_PLUGIN__EDUCATION__HEARTBEAT_MAX_GAP_S": "0.5",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def video_course(client: Any) -> tuple[str, str]:
    course = ok(client.post(COURSES, json={"title": "Watch"}), 201)
    base = f"{COURSES}/{course['id']}/versions/1"
    module = ok(client.post(f"{base}/modules", json={"title": "m"}), 201)
    body = {"kind": "video", "title": "v", "file_id": upload(client, MP4, "v.mp4")}
    lesson = ok(client.post(f"{API}/modules/{module['id']}/lessons", json=body), 201)
    ok(client.post(f"{base}/publish"), 201)
    return course["id"], lesson["id"]


def test_heartbeats(backplane_client: Any, backplane_tenant: SeededTenant) -> None:
    client = backplane_client
    course_id, lesson = video_course(client)
    lea = member(client, backplane_tenant, "lea")["headers"]
    url = f"{API}/lessons/{lesson}/heartbeat"
    assert client.post(url, json={"position_s": 1}, headers=lea).status_code == 403  # not enrolled
    ok(client.post(f"{COURSES}/{course_id}/enrol", headers=lea), 201)

    def beat(position: float, **extra: Any) -> dict[str, Any]:
        time.sleep(0.01)
        body = {"position_s": position, "duration_s": 10, **extra}
        return ok(client.post(url, json=body, headers=lea), 201)  # type: ignore[no-any-return]

    beat(0)
    assert beat(1)["watched_fraction"] == 0.1  # the lesson declares no duration: the player's
    assert beat(2, playing=False)["watched_fraction"] == 0.1  # paused: no watching, no time
    spent = beat(3)["time_spent_s"]
    time.sleep(0.6)  # longer than heartbeat_max_gap_s: the player was closed, say
    stale = beat(4)
    assert stale["time_spent_s"] == spent
    assert stale["watched_fraction"] == 0.2  # [0,1] and [2,3]
    for bad in ({"position_s": -1}, {"position_s": 12, "duration_s": 10}, {"position": 1}):
        answer = client.post(url, json=bad, headers=lea)
        assert answer.status_code == 400, (bad, answer.text)
    text = text_course(client, title="Text")
    ok(client.post(f"{COURSES}/{text['id']}/enrol", headers=lea), 201)
    not_video = client.post(
        f"{API}/lessons/{text['lessons'][0]}/heartbeat", json={"position_s": 1}, headers=lea
    )
    assert not_video.status_code == 409


def test_first_touches_at_once_make_one_progress_row(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    course = text_course(client, lessons=1)
    lea = member(client, backplane_tenant, "lea")["headers"]
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=lea), 201)
    lesson = course["lessons"][0]
    calls = [f"{API}/lessons/{lesson}/start"] * 3 + [f"{API}/lessons/{lesson}/complete"] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda u: client.post(u, headers=lea), calls))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    progress = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=lea))
    assert len(progress["lessons"]) == 1
    assert (progress["status"], progress["percent"]) == ("completed", 100.0)
    funnel = ok(client.get(f"{COURSES}/{course['id']}/dashboard"))
    assert funnel["completed"] == 1
