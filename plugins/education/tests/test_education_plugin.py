"""Plugin citizenship: its OpenAPI tag, its settings validated at start, its meters,
permissions and event types declared, its demo courses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from education_helpers import API, COURSES, ok

from backplane.testing import CHEAP_PASSWORD_HASHING


def backplane(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``backplane`` command, as an operator runs it, on the test's database."""
    command = shutil.which("backplane", path=str(Path(sys.executable).parent)) or "backplane"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPLANE_")}
    return subprocess.run(
        [command, *args],
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_route_is_tagged_education(backplane_client: Any) -> None:
    paths = backplane_client.get("/schema/openapi.json").json()["paths"]
    ours = {p: ops for p, ops in paths.items() if p.startswith("/api/education/")}
    assert len(ours) >= 25, sorted(ours)
    for path, operations in ours.items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                assert "education" in operation.get("tags", []), (method, path)


def test_meters_permissions_and_event_types_are_declared() -> None:
    from backplane_education import plugin

    meters: list[Any] = []
    plugin.register_meters(lambda *items: meters.extend(items))
    assert {(m.code, m.aggregation) for m in meters} == {
        ("education.enrolments", "count"),
        ("education.completions", "count"),
        ("education.quiz_attempts", "count"),
    }
    permissions: list[Any] = []
    plugin.register_permissions(lambda *items: permissions.extend(items))
    assert {p.code: p.roles for p in permissions} == {
        "education.read": ("owner", "admin", "member", "viewer"),
        "education.learn": ("owner", "admin", "member", "viewer"),
        "education.teach": ("owner", "admin", "member"),
        "education.manage": ("owner", "admin"),
        "education.quizzes.manage": ("owner", "admin"),
    }
    events: list[Any] = []
    plugin.register_event_types(lambda *items: events.extend(items))
    assert {e.name for e in events} == {
        "education.enrolled",
        "education.lesson_completed",
        "education.course_completed",
        "education.quiz_attempt_closed",
    }


def test_bad_settings_skip_the_plugin_with_the_reason(tmp_path: Path) -> None:
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_PLUGIN__EDUCATION__VIDEO_COMPLETION_FRACTION": "1.5",
        **CHEAP_PASSWORD_HASHING,
    }
    listed = backplane(environ, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    record = next(r for r in json.loads(listed.stdout) if r["name"] == "education")
    assert record["status"] != "loaded"
    assert "VIDEO_COMPLETION_FRACTION" in record["reason"]


def test_demo_seed_gives_a_track_of_courses(
    backplane_anonymous_client: Any, backplane_environ: dict[str, str]
) -> None:
    seeded = backplane(backplane_environ, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    key = re.search(r"API key \(shown once\): (\S+)", seeded.stdout)
    assert key is not None, seeded.stdout
    client = backplane_anonymous_client
    client.headers["Authorization"] = f"Bearer {key.group(1)}"
    catalogue = ok(client.get(COURSES))
    assert [c["title"] for c in catalogue] == ["Backplane basics", "Writing a plugin"]
    basics, plugin_course = catalogue
    assert plugin_course["prerequisite_ids"] == [basics["id"]]
    drafts = ok(client.get(COURSES, params={"drafts": True}))
    assert len(drafts) == 3
    outline = ok(client.get(f"{COURSES}/{basics['id']}/outline"))
    assert [len(m["lessons"]) for m in outline["modules"]] == [2, 1]
    first = outline["modules"][0]["lessons"][0]["id"]
    assert "<strong>tenancy</strong>" in ok(client.get(f"{API}/lessons/{first}"))["html"]
    again = backplane(backplane_environ, "demo", "seed")
    assert again.returncode == 0, again.stderr
    assert len(ok(client.get(COURSES, params={"drafts": True}))) == 3  # once per database
