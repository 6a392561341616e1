"""Helpers shared by the education plugin's tests: members who log in as themselves (learners
need a user: API keys act for no one), courses built through the API, media files."""

from __future__ import annotations

import uuid
from typing import Any

from backplane.testing import TEST_PASSWORD, SeededTenant, seed_tenant

API = "/api/education"
COURSES = f"{API}/courses"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free" + b"\0" * 4096
"""The head of an MP4 file (the files service detects ``video/mp4`` from it)."""
VTT = b"WEBVTT\n\n00:00.000 --> 00:05.000\nWelcome to the course\n"


def member(client: Any, tenant: SeededTenant, name: str, role: str = "member") -> dict[str, Any]:
    """A user ``name`` who is a ``role`` of ``tenant``: ``headers`` of their access token for
    it and their ``user_id``."""
    email = f"{name}@learners.example.org"
    seed_tenant(client, f"{name}-home", email=email)
    added = client.post(
        "/api/tenant/members", json={"email": email, "role": role}, headers=tenant.headers
    )
    assert added.status_code == 201, added.text
    login = client.post(
        "/api/auth/login", json={"email": email, "password": TEST_PASSWORD, "tenant": tenant.slug}
    )
    assert login.status_code == 200, login.text
    return {
        "headers": {"Authorization": f"Bearer {login.json()['access_token']}"},
        "user_id": added.json()["user_id"],
        "email": email,
    }


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def upload(client: Any, content: bytes, name: str, headers: dict[str, str] | None = None) -> str:
    kw: dict[str, Any] = {"headers": headers} if headers else {}
    stored = client.post("/api/files", content=content, params={"name": name}, **kw)
    assert stored.status_code == 201, stored.text
    return str(stored.json()["id"])


def text_course(
    client: Any,
    title: str = "Course",
    lessons: int = 2,
    headers: dict[str, str] | None = None,
    **course: Any,
) -> dict[str, Any]:
    """A published course of ``lessons`` text lessons in one module: ids of course and
    lessons."""
    kw: dict[str, Any] = {"headers": headers} if headers else {}
    made = ok(client.post(COURSES, json={"title": title, **course}, **kw), 201)
    module = ok(
        client.post(f"{COURSES}/{made['id']}/versions/1/modules", json={"title": "M"}, **kw), 201
    )
    ids = []
    for n in range(lessons):
        lesson = ok(
            client.post(
                f"{API}/modules/{module['id']}/lessons",
                json={"kind": "text", "title": f"L{n}", "body": f"lesson {n}"},
                **kw,
            ),
            201,
        )
        ids.append(lesson["id"])
    ok(client.post(f"{COURSES}/{made['id']}/versions/1/publish", **kw), 201)
    return {"id": made["id"], "lessons": ids, "module_id": module["id"]}


def new_members(client: Any, count: int, prefix: str = "pupil") -> list[str]:
    """``count`` new members (viewers, no password: admins enrol them) of the client's tenant;
    their user ids."""
    ids = []
    for n in range(count):
        email = f"{prefix}{n}-{uuid.uuid4().hex[:6]}@learners.example.org"
        added = client.post("/api/tenant/members", json={"email": email, "role": "viewer"})
        assert added.status_code == 201, added.text
        ids.append(str(added.json()["user_id"]))
    return ids
