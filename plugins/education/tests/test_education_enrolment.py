"""Enrolment: seat limits under concurrent enrolments (SQLite and PostgreSQL, real
concurrency), one seat per learner however often they click, codes, admin-only courses,
prerequisites, cohorts with dates and seats, unenrolling, bulk CSV."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, COURSES, member, new_members, ok, text_course

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, audit_trail, usage_of


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_PLUGIN__EDUCATION__MAX_BULK_CSV_BYTES": "2048",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def admin_enrol(client: Any, course_id: str, user_id: str, **extra: Any) -> Any:
    body = {"user_id": user_id, **extra}
    return client.post(f"{COURSES}/{course_id}/enrolments", json=body)


def seats(client: Any, course_id: str) -> int:
    return int(ok(client.get(f"{COURSES}/{course_id}"))["seats_taken"])


def test_enrolments_racing_for_the_last_seats_never_exceed_the_limit(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    course = text_course(client, seat_limit=3)
    users = new_members(client, 12)
    late, later = users.pop(), users.pop()
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda u: admin_enrol(client, course["id"], u), users))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [409] * 7, [a.text for a in answers]
    assert all("no seats left" in a.json()["detail"] for a in answers if a.status_code == 409)
    listed = ok(client.get(f"{COURSES}/{course['id']}/enrolments"))
    assert len(listed) == 3
    assert seats(client, course["id"]) == 3
    assert usage_of(client, backplane_tenant, "education.enrolments") == 3
    assert len(audit_trail(client, backplane_tenant, "education.learner_enrolled")) == 3
    # a learner leaving gives the seat back; the next one takes it, the one after is refused
    left = ok(client.post(f"{API}/enrolments/{listed[0]['id']}/unenrol"), 201)
    assert left["status"] == "unenrolled"
    assert seats(client, course["id"]) == 2
    assert admin_enrol(client, course["id"], late).status_code == 201
    assert admin_enrol(client, course["id"], later).status_code == 409
    # only members of the tenant can be enrolled (and the seat a refusal took is given back)
    spare = text_course(client, title="Spare", seat_limit=1)
    stranger = admin_enrol(client, spare["id"], str(uuid.uuid4()))
    assert stranger.status_code == 404, stranger.text
    url = f"{COURSES}/{spare['id']}/enrolments"
    assert client.post(url, json={"email": "x@nowhere.example"}).status_code == 404
    assert client.post(url, json={"user_id": late, "email": "a@b.example"}).status_code == 400
    assert seats(client, spare["id"]) == 0
    assert admin_enrol(client, spare["id"], later).status_code == 201


def test_one_learner_enrolling_many_times_at_once_takes_one_seat(
    backplane_client: Any,
) -> None:
    client = backplane_client
    course = text_course(client, seat_limit=5)
    (user,) = new_members(client, 1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: admin_enrol(client, course["id"], user), range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 5, [a.text for a in answers]
    assert seats(client, course["id"]) == 1


def test_cohort_seats_and_dates(backplane_client: Any) -> None:
    client = backplane_client
    course = text_course(client)
    now = datetime.now(UTC)
    url = f"{COURSES}/{course['id']}/cohorts"
    body = {"name": "Spring", "starts_at": now.isoformat(), "seat_limit": 2}
    body["ends_at"] = (now + timedelta(days=30)).isoformat()
    spring = ok(client.post(url, json=body), 201)
    learners = new_members(client, 7)

    def join(user: str) -> Any:
        return admin_enrol(client, course["id"], user, cohort_id=spring["id"])

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(join, learners[:5]))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 2 + [409] * 3, [a.text for a in answers]
    assert ok(client.get(url))[0]["seats_taken"] == 2
    assert seats(client, course["id"]) == 2  # the course's seats count them too
    in_cohort = ok(
        client.get(f"{COURSES}/{course['id']}/enrolments", params={"cohort_id": spring["id"]})
    )
    assert len(in_cohort) == 2
    past = {"name": "Past", "starts_at": (now - timedelta(days=60)).isoformat()}
    past["ends_at"] = (now - timedelta(days=30)).isoformat()
    ended = ok(client.post(url, json=past), 201)
    late = admin_enrol(client, course["id"], learners[5], cohort_id=ended["id"])
    assert late.status_code == 409
    assert "has ended" in late.json()["detail"]
    backwards = {**body, "ends_at": (now - timedelta(days=1)).isoformat()}
    assert client.post(url, json=backwards).status_code == 400
    other = text_course(client, title="Other")
    wrong = admin_enrol(client, other["id"], learners[6], cohort_id=spring["id"])
    assert wrong.status_code == 404  # a cohort of another course


def test_self_enrolment_modes_and_prerequisites(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    learner = member(client, backplane_tenant, "sam")
    as_sam = learner["headers"]
    coded = text_course(client, title="Coded", enrolment="code", enrolment_code="open-sesame")
    url = f"{COURSES}/{coded['id']}/enrol"
    assert client.post(url, headers=as_sam).status_code == 403
    assert client.post(url, json={"code": "wrong-code"}, headers=as_sam).status_code == 403
    made = ok(client.post(url, json={"code": "open-sesame"}, headers=as_sam), 201)
    assert made["source"] == "code"
    assert "open-sesame" not in client.get(f"{COURSES}/{coded['id']}").text
    closed = text_course(client, title="Closed", enrolment="admin")
    assert client.post(f"{COURSES}/{closed['id']}/enrol", headers=as_sam).status_code == 403
    no_code = client.post(COURSES, json={"title": "x", "enrolment": "code"})
    assert no_code.status_code == 400
    # a key acts for no one: it cannot enrol itself
    assert client.post(f"{COURSES}/{coded['id']}/enrol").status_code == 403
    # prerequisites: the basics first
    basics = text_course(client, title="Basics", lessons=1)
    advanced = text_course(client, title="Advanced", prerequisite_ids=[basics["id"]])
    first = client.post(f"{COURSES}/{advanced['id']}/enrol", headers=as_sam)
    assert first.status_code == 409
    assert "Basics" in first.json()["detail"]
    ok(client.post(f"{COURSES}/{basics['id']}/enrol", headers=as_sam), 201)
    ok(client.post(f"{API}/lessons/{basics['lessons'][0]}/complete", headers=as_sam), 201)
    ok(client.post(f"{COURSES}/{advanced['id']}/enrol", headers=as_sam), 201)
    # unenrolling oneself, then coming back keeps the progress
    mine = ok(client.get(f"{API}/me/enrolments", headers=as_sam))
    basics_row = next(e for e in mine if e["course_id"] == basics["id"])
    assert basics_row["status"] == "completed"
    ok(client.post(f"{API}/enrolments/{basics_row['id']}/unenrol", headers=as_sam), 201)
    again = client.post(f"{API}/enrolments/{basics_row['id']}/unenrol", headers=as_sam)
    assert again.status_code == 409
    back = ok(client.post(f"{COURSES}/{basics['id']}/enrol", headers=as_sam), 201)
    assert back["id"] == basics_row["id"]
    progress = ok(client.get(f"{API}/me/courses/{basics['id']}/progress", headers=as_sam))
    assert [p["completed_at"] is not None for p in progress["lessons"]] == [True]
    # another member may not unenrol sam
    other = member(client, backplane_tenant, "kim")
    theirs = client.post(f"{API}/enrolments/{back['id']}/unenrol", headers=other["headers"])
    assert theirs.status_code == 403


def test_bulk_enrolment_from_csv(backplane_client: Any, backplane_tenant: SeededTenant) -> None:
    client = backplane_client
    course = text_course(client, seat_limit=3)
    url = f"{COURSES}/{course['id']}/enrolments/bulk"
    first, second, third, fourth = new_members(client, 4)
    sam = member(client, backplane_tenant, "sam")
    rows = [
        first,
        "not-a-uuid",
        second,
        first,
        str(uuid.uuid4()),
        ",".join(["", sam["email"].upper()]),
        third,
        fourth,
    ]
    body = "user_id,email\n" + "\n".join(r if "," in r else f"{r}," for r in rows) + "\n"
    result = ok(client.post(url, content=body.encode(), headers={"Content-Type": "text/csv"}), 201)
    assert (result["enrolled"], result["failed"]) == (3, 5)
    outcome = [(r["line"], r["status"]) for r in result["rows"]]
    assert outcome == [
        (2, "enrolled"),
        (3, "failed"),
        (4, "enrolled"),
        (5, "failed"),
        (6, "failed"),
        (7, "enrolled"),
        (8, "failed"),
        (9, "failed"),
    ]
    details = [r["detail"] for r in result["rows"] if r["status"] == "failed"]
    assert details == [
        "bad id",
        "already enrolled in this course",
        "no member of this tenant with that user_id or email",
        "no seats left in this course",
        "no seats left in this course",
    ]
    enrolled_ids = {e["user_id"] for e in ok(client.get(f"{COURSES}/{course['id']}/enrolments"))}
    assert enrolled_ids == {first, second, sam["user_id"]}
    assert seats(client, course["id"]) == 3
    assert {e["source"] for e in ok(client.get(f"{COURSES}/{course['id']}/enrolments"))} == {"bulk"}
    for bad, status in (
        (b"name\nx\n", 400),
        (b"user_id\n", 400),
        (b"\xff\xfe\x00", 400),
        (b"user_id\n" + b"a" * 4096, 413),
    ):
        answer = client.post(url, content=bad, headers={"Content-Type": "text/csv"})
        assert answer.status_code == status, (bad[:20], answer.text)
    assert len(audit_trail(client, backplane_tenant, "education.bulk_enrolment")) == 1
