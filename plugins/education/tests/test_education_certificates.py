"""Certificates of completion through the documents plugin, an optional dependency reached
only through the kernel's ``documents.render`` service: issued on completion when documents is
there for the tenant; without it (switched off), or when the tenant lacks the template, the
completion is recorded all the same and no certificate is issued. (Without the documents plugin
installed at all: ``test_education_journey.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from certificate_helpers import certificate_template
from education_helpers import API, COURSES, member, ok, text_course

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, seed_tenant, usage_of


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education,documents",
        **CHEAP_PASSWORD_HASHING,
    }


def finish(client: Any, course: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """Enrol and complete every lesson; the course's progress."""
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=headers), 201)
    for lesson in course["lessons"]:
        ok(client.post(f"{API}/lessons/{lesson}/complete", headers=headers), 201)
    return ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=headers))  # type: ignore[no-any-return]


def test_a_completed_course_issues_a_certificate(
    backplane_client: Any, backplane_tenant: SeededTenant, backplane_plugins: Any
) -> None:
    client = backplane_client
    certificate_template(client)
    course = text_course(client, "Compilers for everyone", lessons=2)
    lea, leo = member(client, backplane_tenant, "lea"), member(client, backplane_tenant, "leo")
    half = ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=leo["headers"]), 201)
    assert half["status"] == "active"
    assert ok(client.get(f"{API}/me/certificates", headers=lea["headers"])) == []

    assert finish(client, course, lea["headers"])["status"] == "completed"
    [mine] = ok(client.get(f"{API}/me/certificates", headers=lea["headers"]))
    assert (mine["course_id"], mine["user_id"]) == (course["id"], lea["user_id"])
    assert mine["course_title"] == "Compilers for everyone"
    assert mine["media_type"] == "application/pdf"
    pdf = client.get(mine["download"], headers=lea["headers"])
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF")
    assert len(pdf.content) == mine["size"]
    assert "attachment" in pdf.headers["content-disposition"]
    # the documents plugin keeps the document, about the learner, metered as its renders are
    [document] = ok(client.get("/api/documents/documents"))
    assert document["subject_email"] == lea["email"]
    assert usage_of(client, backplane_tenant, "documents.generated") == 1

    # someone else's certificate is not theirs to read; the teachers see the course's
    other = client.get(mine["download"], headers=leo["headers"])
    assert other.status_code == 404, other.text
    assert ok(client.get(f"{API}/me/certificates", headers=leo["headers"])) == []
    issued = ok(client.get(f"{COURSES}/{course['id']}/certificates"))
    assert [c["id"] for c in issued] == [mine["id"]]
    denied = client.get(f"{COURSES}/{course['id']}/certificates", headers=leo["headers"])
    assert denied.status_code == 403

    # another tenant's owner: nothing of A's, by any certificate route
    b = seed_tenant(backplane_plugins, "globex").headers
    assert ok(client.get(f"{API}/me/certificates", headers=b)) == []
    for url in (mine["download"], f"{COURSES}/{course['id']}/certificates"):
        answer = client.get(url, headers=b)
        assert answer.status_code == 404, (url, answer.status_code, answer.text)


def test_no_documents_template_or_plugin_means_no_certificate_but_a_completion(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    certificate_template(client)
    missing = text_course(client, "Chosen template", lessons=1, certificate_template="Diploma")
    assert ok(client.get(f"{COURSES}/{missing['id']}"))["certificate_template"] == "Diploma"
    lea = member(client, backplane_tenant, "lea")
    # the tenant has no "Diploma": the completion stands, and no certificate
    assert finish(client, missing, lea["headers"])["status"] == "completed"
    assert ok(client.get(f"{API}/me/certificates", headers=lea["headers"])) == []
    assert usage_of(client, backplane_tenant, "education.completions") == 1

    # documents switched off for the tenant: the service is not there for it
    switched = client.put("/api/tenant/plugins/documents", json={"enabled": False})
    assert switched.status_code == 200, switched.text
    plain = text_course(client, "Default template", lessons=1)
    assert finish(client, plain, lea["headers"])["status"] == "completed"
    assert ok(client.get(f"{API}/me/certificates", headers=lea["headers"])) == []
    assert usage_of(client, backplane_tenant, "documents.generated") == 0

    # switched on again, the next completion gets its certificate from the default template
    client.put("/api/tenant/plugins/documents", json={"enabled": True})
    third = text_course(client, "Third", lessons=1)
    assert finish(client, third, lea["headers"])["status"] == "completed"
    [issued] = ok(client.get(f"{API}/me/certificates", headers=lea["headers"]))
    assert issued["course_id"] == third["id"]
    assert usage_of(client, backplane_tenant, "education.completions") == 3
