"""Demo data (``backplane demo seed``), the plugin's declarations (OpenAPI tag, meters,
permissions) and the data-rights hooks: a contact is a data subject found by email, exported
with everything about them and erased everywhere, timeline included."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, SEGMENTS, all_contacts, define, make_contact, make_list

from backplane.testing import run_tasks


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


def test_demo_seed_shows_a_segment_at_work(
    backplane_anonymous_client: TestClient[Litestar], backplane_environ: dict[str, str]
) -> None:
    seeded = backplane(backplane_environ, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    key = re.search(r"API key \(shown once\): (\S+)", seeded.stdout)
    assert key is not None, seeded.stdout
    client = backplane_anonymous_client
    client.headers["Authorization"] = f"Bearer {key.group(1)}"
    segments = client.get(SEGMENTS).json()
    assert [(s["name"], s["count"]) for s in segments] == [("Engaged leads", 4)]
    assert len(all_contacts(client)) == 10
    [form] = client.get("/api/marketing/forms").json()
    page = client.get(urlsplit(form["url"]).path)  # public: the demo's page works at once
    assert page.status_code == 200, page.text
    assert "Monthly product news" in page.text


def test_openapi_tag_meters_and_permissions(backplane_client: TestClient[Litestar]) -> None:
    schema = backplane_client.get("/schema/openapi.json").json()
    ours = {p: ops for p, ops in schema["paths"].items() if p.startswith("/api/marketing/")}
    assert len(ours) >= 15
    for operations in ours.values():
        for operation in operations.values():
            assert "marketing" in operation["tags"]


def test_a_contact_is_exported_and_erased_everywhere_by_email(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    define(client, "score", "number")
    news = make_list(client, "news")
    sequence = {  # the subject joins the list: a pass of this automation, waiting
        "name": "welcome",
        "status": "active",
        "trigger": {"type": "list_joined", "list_id": news},
        "steps": [
            {"id": "w", "type": "wait", "days": 1},
            {"id": "t", "type": "add_tag", "tag": "x"},
        ],
    }
    assert client.post("/api/marketing/automations", json=sequence).status_code == 201
    person = make_contact(
        client,
        "Subject@Example.org",
        tags=["t"],
        attributes={"score": 5},
        lists=[{"list_id": news}],
    )
    other = make_contact(client, "other@example.org", tags=["t"])
    client.post(f"{CONTACTS}/{person['id']}/events", json={"type": "clicked", "data": {"l": 1}})
    assert client.get(f"{CONTACTS}/{person['id']}/score").status_code == 200  # a stored score
    run_tasks(client, timeout=30)  # the automation's first step
    segment = client.post(
        SEGMENTS, json={"name": "s", "kind": "static", "filter": {"type": "tag", "tag": "t"}}
    )
    assert segment.json()["count"] == 2

    exported = client.post("/api/privacy/export", json={"email": "subject@example.org"})
    assert exported.status_code == 200, exported.text
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        entries: dict[str, list[Any]] = {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.startswith("marketing/")
        }
    assert [c["email"] for c in entries["marketing/marketing_contacts.jsonl"]] == [
        "subject@example.org"
    ]
    assert [t["tag"] for t in entries["marketing/marketing_contact_tags.jsonl"]] == ["t"]
    assert len(entries["marketing/marketing_subscriptions.jsonl"]) == 1
    assert len(entries["marketing/marketing_segment_members.jsonl"]) == 1
    kinds = sorted(e["type"] for e in entries["marketing/marketing_events.jsonl"])
    assert kinds == ["clicked", "subscribed"]
    assert [s["contact_id"] for s in entries["marketing/marketing_scores.jsonl"]] == [person["id"]]
    [run] = entries["marketing/marketing_automation_runs.jsonl"]
    assert (run["contact_id"], run["step"]) == (person["id"], "t")
    assert [s["step"] for s in entries["marketing/marketing_automation_steps.jsonl"]] == ["w"]

    erased = client.post("/api/privacy/erase", json={"email": "SUBJECT@example.org"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["marketing"] == {
        "marketing_contact_tags": 1,
        "marketing_subscriptions": 1,
        "marketing_events": 2,
        "marketing_segment_members": 1,
        "marketing_scores": 1,
        "marketing_link_clicks": 0,  # no campaign reached this contact
        "marketing_ab_assignments": 0,
        "marketing_recipients": 0,
        "marketing_suppressions": 0,
        "marketing_automation_steps": 1,
        "marketing_automation_messages": 0,
        "marketing_automation_runs": 1,
        "marketing_contacts": 1,
    }
    assert [c["id"] for c in all_contacts(client)] == [other["id"]]
    assert client.get(f"{SEGMENTS}/{segment.json()['id']}").json()["count"] == 1
    again = client.post("/api/privacy/export", json={"email": "subject@example.org"})
    with zipfile.ZipFile(io.BytesIO(again.content)) as archive:
        leftover = {n: archive.read(n) for n in archive.namelist() if n.startswith("marketing/")}
    assert leftover
    assert all(content.strip() == b"" for content in leftover.values()), leftover
