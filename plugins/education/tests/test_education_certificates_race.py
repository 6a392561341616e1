"""The same learner completes the last lesson from two requests at once: one completion, one
certificate, no error answer (SQLite, and PostgreSQL as the application role)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from certificate_helpers import certificate_template
from education_helpers import API, COURSES, member, ok, text_course

from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, usage_of


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education,documents",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def test_racing_completions_issue_one_certificate(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    certificate_template(client)
    course = text_course(client, "Race", lessons=1)
    lea = member(client, backplane_tenant, "lea")["headers"]
    ok(client.post(f"{COURSES}/{course['id']}/enrol", headers=lea), 201)
    url = f"{API}/lessons/{course['lessons'][0]}/complete"
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: client.post(url, headers=lea), range(4)))
    assert all(a.status_code < 500 for a in answers), [(a.status_code, a.text) for a in answers]
    assert any(a.status_code == 201 for a in answers)
    progress = ok(client.get(f"{API}/me/courses/{course['id']}/progress", headers=lea))
    assert progress["status"] == "completed"
    assert len(ok(client.get(f"{API}/me/certificates", headers=lea))) == 1
    assert len(ok(client.get("/api/documents/documents"))) == 1
    assert usage_of(client, backplane_tenant, "education.completions") == 1
