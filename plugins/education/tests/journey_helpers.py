"""Helpers of the full journey test: a learner's client that keeps every response it gets (for
the answer-key scan), the course an admin builds with every lesson kind, and the scan itself."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from education_helpers import API, COURSES, MP4, VTT, ok, upload
from quiz_helpers import ACCEPTED, KEY_FIELDS, NUMERIC_KEY, QUESTIONS


@dataclass
class LearnerClient:
    """A learner's client: every response it receives is kept."""

    client: Any
    headers: dict[str, str]
    responses: list[tuple[str, str, int, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        response = self.client.request(method, url, headers=headers, **kw)
        self.responses.append((method, url, response.status_code, response))
        return response

    def get(self, url: str, **kw: Any) -> Any:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.request("PUT", url, **kw)

    def beat(self, lesson: str, position: float) -> dict[str, Any]:
        """One player heartbeat (a few milliseconds after the last)."""
        time.sleep(0.01)
        url = f"{API}/lessons/{lesson}/heartbeat"
        return ok(self.post(url, json={"position_s": position}), 201)  # type: ignore[no-any-return]


def build_course(client: Any, quiz_id: str) -> dict[str, Any]:
    """The admin's course: one lesson of each kind (the quiz after the text lesson), published;
    ids of the course and of each lesson by kind."""
    course = ok(
        client.post(
            COURSES, json={"title": "Video editing", "summary": "Cut, trim, export", "tags": ["v"]}
        ),
        201,
    )
    base = f"{COURSES}/{course['id']}/versions/1"
    module = ok(client.post(f"{base}/modules", json={"title": "Basics"}), 201)
    specs: dict[str, dict[str, Any]] = {
        "text": {"body": "# Welcome\n\nRead this first."},
        "video": {
            "file_id": upload(client, MP4, "intro.mp4"),
            "captions_file_id": upload(client, VTT, "intro.vtt"),
            "chapters": [{"start_s": 0, "title": "Start"}, {"start_s": 10, "title": "Trim"}],
            "duration_s": 20,
        },
        "file": {"file_id": upload(client, b"%PDF-1.4\n% handout\n", "handout.pdf")},
        "link": {"url": "https://example.org/reading"},
    }
    add = f"{API}/modules/{module['id']}/lessons"
    lessons = {}
    for kind, extra in specs.items():
        lessons[kind] = ok(client.post(add, json={"kind": kind, "title": kind, **extra}), 201)
    quiz = {"kind": "quiz", "title": "Check", "quiz_id": quiz_id}
    quiz["prerequisite_keys"] = [lessons["text"]["key"]]
    lessons["quiz"] = ok(client.post(add, json=quiz), 201)
    ok(client.post(f"{base}/publish"), 201)
    return {"id": course["id"], "lessons": {k: v["id"] for k, v in lessons.items()}}


def key_fields_with_values(value: Any) -> set[str]:
    """Key-only field names holding a value anywhere in a JSON value (a lesson's ``body`` is
    present for learners, as null)."""
    found: set[str] = set()
    if isinstance(value, dict):
        found |= {k for k in KEY_FIELDS & set(value) if value[k] is not None}
        for item in value.values():
            found |= key_fields_with_values(item)
    elif isinstance(value, list):
        for item in value:
            found |= key_fields_with_values(item)
    return found


def shown_in_key_order(value: Any) -> bool:
    """Whether an ordering question's items appear in their correct order anywhere."""
    order = next(q["items"] for q in QUESTIONS if q["type"] == "ordering")
    if isinstance(value, dict):
        items = value.get("items")
        if isinstance(items, list) and [i.get("text") for i in items if isinstance(i, dict)] == (
            order
        ):
            return True
        return any(shown_in_key_order(v) for v in value.values())
    if isinstance(value, list):
        return any(shown_in_key_order(v) for v in value)
    return False


def leaks(responses: list[tuple[str, str, int, Any]]) -> list[tuple[str, str, str]]:
    """Every trace of the answer key in the responses: key fields, key values (the numeric
    answer, the accepted texts as the instructor wrote them), items in their key order."""
    found = []
    key_values = [repr(NUMERIC_KEY), *ACCEPTED]
    for method, url, _, response in responses:
        text = response.text
        for value in key_values:
            if value in text:
                found.append((method, url, value))
        if "json" not in response.headers.get("content-type", ""):
            continue
        body = json.loads(text) if text else None
        found.extend((method, url, name) for name in sorted(key_fields_with_values(body)))
        if shown_in_key_order(body):
            found.append((method, url, "ordering items in their key order"))
    return found
