"""Courses: versions (a published version is immutable, learners stay on theirs until moved,
progress follows lesson keys), the catalogue (full-text search, tags, difficulty, drafts for
their teachers only), instructors, and bad input answered with clear 4xx."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from education_helpers import API, COURSES, VTT, member, ok, text_course, upload

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, audit_trail


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_PLUGIN__EDUCATION__MAX_MARKDOWN_BYTES": "2048",
        "BACKPLANE_PLUGIN__EDUCATION__MAX_LESSONS_PER_VERSION": "4",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def lesson_titles(outline: dict[str, Any]) -> list[str]:
    return [lesson["title"] for m in outline["modules"] for lesson in m["lessons"]]


def test_versions_learners_stay_on_theirs_until_moved(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    lea = member(client, backplane_tenant, "lea")
    course = text_course(client, title="Versioned", lessons=2)
    c = course["id"]
    ok(client.post(f"{COURSES}/{c}/enrol", headers=lea["headers"]), 201)
    ok(client.post(f"{API}/lessons/{course['lessons'][0]}/complete", headers=lea["headers"]), 201)

    # version 1 is published: nothing of it changes
    edit = {"kind": "text", "title": "changed", "body": "changed"}
    frozen = client.put(f"{API}/lessons/{course['lessons'][0]}", json=edit)
    assert frozen.status_code == 409
    assert "immutable" in frozen.json()["detail"]
    assert client.post(f"{COURSES}/{c}/versions/1/modules", json={"title": "x"}).status_code == 409
    assert client.delete(f"{API}/lessons/{course['lessons'][1]}").status_code == 409
    assert client.post(f"{COURSES}/{c}/versions/1/publish").status_code == 409

    # version 2: a copy (same keys), one lesson changed, one added, then published
    ok(client.post(f"{COURSES}/{c}/versions"), 201)
    assert client.post(f"{COURSES}/{c}/versions").status_code == 409  # one draft at a time
    v1 = ok(client.get(f"{COURSES}/{c}/outline", params={"version": 1}))
    v2 = ok(client.get(f"{COURSES}/{c}/outline", params={"version": 2}))
    assert v2["status"] == "draft"
    keys = [lesson["key"] for m in v1["modules"] for lesson in m["lessons"]]
    assert [lesson["key"] for m in v2["modules"] for lesson in m["lessons"]] == keys
    second_v2 = v2["modules"][0]["lessons"][1]["id"]
    ok(client.put(f"{API}/lessons/{second_v2}", json={**edit, "title": "L1 new"}))
    added = {"kind": "link", "title": "L2", "url": "https://example.org/more"}
    ok(client.post(f"{API}/modules/{v2['modules'][0]['id']}/lessons", json=added), 201)
    ok(client.post(f"{COURSES}/{c}/versions/2/publish"), 201)
    assert [v["status"] for v in ok(client.get(f"{COURSES}/{c}/versions"))] == [
        "published",
        "published",
    ]

    # lea still follows version 1; a newcomer gets version 2
    assert lesson_titles(ok(client.get(f"{COURSES}/{c}/outline", headers=lea["headers"]))) == [
        "L0",
        "L1",
    ]
    refused = client.get(f"{API}/lessons/{second_v2}", headers=lea["headers"])
    assert refused.status_code == 403
    assert "version 1" in refused.json()["detail"]
    newcomer = member(client, backplane_tenant, "neo")
    joined = ok(client.post(f"{COURSES}/{c}/enrol", headers=newcomer["headers"]), 201)
    assert joined["version"] == 2
    assert lesson_titles(ok(client.get(f"{COURSES}/{c}/outline", headers=newcomer["headers"]))) == [
        "L0",
        "L1 new",
        "L2",
    ]

    # moved to version 2, lea keeps the lesson she completed (same key): 1 of 3 done
    enrolment = ok(client.get(f"{API}/me/enrolments", headers=lea["headers"]))[0]
    assert enrolment["percent"] == 50.0
    moved = ok(client.post(f"{API}/enrolments/{enrolment['id']}/move", json={"version": 2}), 201)
    assert (moved["version"], moved["percent"]) == (2, 33.33)
    assert (
        client.post(f"{API}/enrolments/{enrolment['id']}/move", json={"version": 9}).status_code
        == 404
    )
    assert len(audit_trail(client, backplane_tenant, "education.course_published")) == 2


def test_catalogue_search_tags_difficulty_and_drafts(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    rust = text_course(client, title="Rust for beginners", tags=["rust", "systems"])
    text_course(client, title="Advanced SQL", summary="Window functions", difficulty="advanced")
    draft = ok(client.post(COURSES, json={"title": "Secret rust draft"}), 201)
    titles = lambda **params: [c["title"] for c in ok(client.get(COURSES, params=params))]  # noqa: E731
    assert titles() == ["Advanced SQL", "Rust for beginners"]
    assert titles(q="rust") == ["Rust for beginners"]
    assert titles(q="window functions") == ["Advanced SQL"]
    assert titles(q="window rust") == []  # every word must match
    assert titles(tag="systems") == ["Rust for beginners"]
    assert titles(difficulty="advanced") == ["Advanced SQL"]
    assert titles(drafts=True, q="rust") == ["Rust for beginners", "Secret rust draft"]
    # a member sees no drafts, not even asking for them, and cannot open one
    viewer = member(client, backplane_tenant, "vic", role="viewer")
    as_vic = viewer["headers"]
    listed = ok(client.get(COURSES, params={"drafts": True}, headers=as_vic))
    assert [c["title"] for c in listed] == ["Advanced SQL", "Rust for beginners"]
    assert client.get(f"{COURSES}/{draft['id']}", headers=as_vic).status_code == 404
    assert client.get(f"{COURSES}/{draft['id']}/outline", headers=as_vic).status_code == 404
    assert client.post(COURSES, json={"title": "x"}, headers=as_vic).status_code == 403
    # a member who teaches: creates a course, is its instructor, sees its draft
    teacher = member(client, backplane_tenant, "tia")
    mine = ok(client.post(COURSES, json={"title": "Tia's draft"}, headers=teacher["headers"]), 201)
    theirs = ok(client.get(COURSES, params={"drafts": True}, headers=teacher["headers"]))
    assert "Tia's draft" in [c["title"] for c in theirs]
    assert "Secret rust draft" not in [c["title"] for c in theirs]
    assert ok(client.get(f"{COURSES}/{mine['id']}/instructors")) == [teacher["user_id"]]
    # not an instructor of rust: may not edit it; made one, may
    patch = {"summary": "Now with async"}
    url = f"{COURSES}/{rust['id']}"
    assert client.patch(url, json=patch, headers=teacher["headers"]).status_code == 403
    ok(client.put(f"{url}/instructors/{teacher['user_id']}"))
    assert (
        ok(client.patch(url, json=patch, headers=teacher["headers"]))["summary"] == patch["summary"]
    )
    assert client.delete(f"{url}/instructors/{teacher['user_id']}").status_code == 204
    assert client.put(f"{url}/instructors/{uuid.uuid4()}").status_code == 404  # no member
    # who may join is audited, the code itself never
    ok(client.patch(url, json={"enrolment": "code", "enrolment_code": "letmein-42"}))
    changes = audit_trail(client, backplane_tenant, "education.admission_changed")
    assert [c.details["fields"] for c in changes] == [["enrolment", "enrolment_code"]]
    assert "letmein-42" not in str(changes)
    assert client.patch(url, json=patch, headers=teacher["headers"]).status_code == 403


BAD_LESSONS: list[tuple[dict[str, Any], int, str]] = [
    ({"kind": "text", "title": "t"}, 400, "needs a body"),
    ({"kind": "text", "title": "t", "body": "x" * 3000}, 413, "max_markdown_bytes"),
    ({"kind": "video", "title": "v"}, 400, "needs a file_id"),
    ({"kind": "video", "title": "v", "file_id": "VTT"}, 400, "not video/"),
    ({"kind": "file", "title": "f", "file_id": str(uuid.uuid4())}, 400, "not found"),
    ({"kind": "quiz", "title": "q"}, 400, "needs a quiz_id"),
    ({"kind": "link", "title": "l", "url": "javascript:alert(1)"}, 400, "url"),
    ({"kind": "link", "title": "l"}, 400, "needs a url"),
    ({"kind": "podcast", "title": "p"}, 400, "kind"),
    ({"kind": "text", "title": "", "body": "x"}, 400, "title"),
    ({"kind": "text", "title": "t", "body": "x", "extra": 1}, 400, "extra"),
    (
        {"kind": "text", "title": "t", "body": "x", "prerequisite_keys": [str(uuid.uuid4())]},
        400,
        "prerequisite",
    ),
]


def test_bad_lessons_are_refused_with_a_reason(backplane_client: Any) -> None:
    client = backplane_client
    course = ok(client.post(COURSES, json={"title": "Bad input"}), 201)
    module = ok(
        client.post(f"{COURSES}/{course['id']}/versions/1/modules", json={"title": "m"}), 201
    )
    captions = upload(client, VTT, "c.vtt")
    for spec, status, words in BAD_LESSONS:
        body = {**spec, "file_id": captions} if spec.get("file_id") == "VTT" else spec
        answer = client.post(f"{API}/modules/{module['id']}/lessons", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.text, (body, answer.text)
    outline = ok(client.get(f"{COURSES}/{course['id']}/outline", params={"version": 1}))
    assert outline["modules"][0]["lessons"] == []  # nothing of them was stored


def test_limits_and_bad_course_input(backplane_client: Any) -> None:
    client = backplane_client
    course = ok(client.post(COURSES, json={"title": "Limits"}), 201)
    url = f"{COURSES}/{course['id']}"
    module = ok(client.post(f"{url}/versions/1/modules", json={"title": "m"}), 201)
    add = f"{API}/modules/{module['id']}/lessons"
    for n in range(4):
        ok(client.post(add, json={"kind": "text", "title": f"t{n}", "body": "x"}), 201)
    full = client.post(add, json={"kind": "text", "title": "t5", "body": "x"})
    assert full.status_code == 422
    assert "max_lessons_per_version" in full.text
    assert client.post(f"{url}/versions/1/publish").status_code == 201
    empty = ok(client.post(COURSES, json={"title": "Empty"}), 201)
    assert client.post(f"{COURSES}/{empty['id']}/versions/1/publish").status_code == 409
    for bad in (
        {"title": "x", "difficulty": "expert"},
        {"title": "x", "seat_limit": 0},
        {"title": "x", "tags": ["<b>"]},
        {"title": "x", "prerequisite_ids": [str(uuid.uuid4())]},
        {"title": "x", "prerequisite_ids": ["nope"]},
    ):
        assert client.post(COURSES, json=bad).status_code == 400, bad
    assert client.patch(url, json={"prerequisite_ids": [course["id"]]}).status_code == 400
    assert client.get(f"{COURSES}/{uuid.uuid4()}").status_code == 404
    assert client.get(f"{API}/lessons/{uuid.uuid4()}").status_code == 404
    assert client.get(f"{url}/outline", params={"version": 7}).status_code == 404
