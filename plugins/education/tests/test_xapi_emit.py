"""The plugin records its own learning events as statements in the tenant's LRS: enrolling
(registered), completing a lesson and completing the course (completed), with the learner as
an account agent and the enrolment as the registration."""

from __future__ import annotations

import msgspec
from litestar import Litestar
from litestar.testing import TestClient
from xapi_helpers import STATEMENTS, credential

from backplane.testing import SeededTenant
from backplane_education.xapi.emit import VERBS, activity_iri, learner

COURSES = "/api/education/courses"


def test_learning_events_become_statements(
    backplane_client: TestClient[Litestar], backplane_tenant: SeededTenant
) -> None:
    client = backplane_client
    course_id = client.post(COURSES, json={"title": "Intro"}).json()["id"]
    module = client.post(f"{COURSES}/{course_id}/versions/1/modules", json={"title": "M"}).json()
    lesson = client.post(
        f"/api/education/modules/{module['id']}/lessons",
        json={"kind": "text", "title": "Hello", "body": "Hi"},
    ).json()
    assert client.post(f"{COURSES}/{course_id}/versions/1/publish").status_code == 201
    enrolled = client.post(f"{COURSES}/{course_id}/enrol")
    assert enrolled.status_code == 201, enrolled.text
    done = client.post(f"/api/education/lessons/{lesson['id']}/complete")
    assert done.status_code == 201, done.text

    lrs = credential(client)
    me = msgspec.json.encode(learner(str(backplane_tenant.user_id))).decode()
    found = client.get(STATEMENTS, params={"agent": me, "ascending": "true"}, headers=lrs)
    statements = found.json()["statements"]
    course = activity_iri("course", course_id)
    assert [(s["verb"]["id"], s["object"]["id"]) for s in statements] == [
        (VERBS["registered"], course),
        (VERBS["completed"], activity_iri("lesson", lesson["key"])),
        (VERBS["completed"], course),
    ]
    assert statements[0]["context"]["registration"] == enrolled.json()["id"]
    assert statements[1]["context"]["contextActivities"]["parent"] == [{"id": course}]
    assert statements[2]["result"] == {"completion": True}
