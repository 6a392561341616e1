"""The plugin loads, migrates and serves: a course is built, published and listed."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

COURSES = "/api/education/courses"


def test_a_course_is_built_published_and_listed(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    course = client.post(COURSES, json={"title": "Intro to Rust", "tags": ["rust"]})
    assert course.status_code == 201, course.text
    course_id = course.json()["id"]
    assert client.get(COURSES).json() == []  # not published yet
    module = client.post(f"{COURSES}/{course_id}/versions/1/modules", json={"title": "Basics"})
    assert module.status_code == 201, module.text
    lesson = client.post(
        f"/api/education/modules/{module.json()['id']}/lessons",
        json={"kind": "text", "title": "Hello", "body": "# Hi\n<script>x</script>"},
    )
    assert lesson.status_code == 201, lesson.text
    assert "<script>" not in lesson.json()["html"]
    published = client.post(f"{COURSES}/{course_id}/versions/1/publish")
    assert published.status_code == 201, published.text
    listed: list[dict[str, Any]] = client.get(COURSES, params={"q": "rust"}).json()
    assert [c["id"] for c in listed] == [course_id]
