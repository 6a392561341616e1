"""Automations: every trigger (list joined, tag added, score crossed, form submitted, a custom
event by API), at most one pass per contact unless re-entry is allowed, branches, pause and
archive; the state survives a new app instance; a step whose transaction fails leaves
nothing behind and is done once afterwards; tenants are isolated; bad definitions get a clear
4xx and an active definition is immutable."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from automation_helpers import (
    AUTOMATIONS,
    QUIET_SCHEDULER,
    funnel,
    make_automation,
    progress,
    tags_of,
    tick,
)
from campaign_helpers import Sink, make_template, smtp_environ, smtp_sink
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, base_environ, define, make_contact, make_list

from backplane.testing import restarted_app, run_in_tenant, run_tasks, seed_tenant

TAG_STEP = [{"id": "tag", "type": "add_tag", "tag": "reached"}]


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


@pytest.fixture
def backplane_environ(tmp_path: Path, sink: Sink) -> dict[str, str]:
    return base_environ(tmp_path) | smtp_environ(sink) | QUIET_SCHEDULER


def _reached(client: TestClient[Litestar], contact: str) -> bool:
    return "reached" in tags_of(client, contact)


def test_every_trigger_enrols_once_unless_reentry(
    backplane_client: TestClient[Litestar], backplane_tenant: Any
) -> None:
    from backplane_marketing.automations import form_submitted

    client = backplane_client
    news = make_list(client, "news")
    on_list = make_automation(
        client, name="list", trigger={"type": "list_joined", "list_id": news}, steps=TAG_STEP
    )
    on_event = make_automation(
        client,
        name="event",
        trigger={"type": "event", "event": "webinar_attended"},
        steps=[{"id": "t", "type": "add_tag", "tag": "webinar"}],
        allow_reentry=True,
    )
    on_form = make_automation(
        client,
        name="form",
        trigger={"type": "form_submitted", "form_id": "demo"},
        steps=[{"id": "t", "type": "add_tag", "tag": "form"}],
    )
    a = make_contact(client, "a@example.org")["id"]
    b = make_contact(client, "b@example.org")["id"]
    # list joined (PATCH), twice: one pass
    for status in ("subscribed", "unsubscribed", "subscribed"):
        changed = client.patch(
            f"{CONTACTS}/{a}", json={"lists": [{"list_id": news, "status": status}]}
        )
        assert changed.status_code == 200, changed.text
    run_tasks(client, timeout=30)
    assert _reached(client, a)
    assert not _reached(client, b)
    assert funnel(client, on_list["id"])["by_status"] == {"finished": 1}
    # a custom event by API (by address, and on the timeline): re-entry allowed
    posted = client.post(
        "/api/marketing/events", json={"email": "b@example.org", "type": "webinar_attended"}
    )
    assert posted.status_code == 201, posted.text
    run_tasks(client, timeout=30)
    timeline = client.post(f"{CONTACTS}/{b}/events", json={"type": "webinar_attended"})
    assert timeline.status_code == 201, timeline.text
    other = client.post(f"{CONTACTS}/{b}/events", json={"type": "something_else"})
    assert other.status_code == 201
    run_tasks(client, timeout=30)
    assert "webinar" in tags_of(client, b)
    runs = progress(client, b)
    assert sorted(r["entry"] for r in runs) == [1, 2]
    assert {r["status"] for r in runs} == {"finished"}
    # a form, through the function the forms code calls: only the named form
    assert (
        run_in_tenant(
            client,
            backplane_tenant,
            lambda k: form_submitted(k, uuid.UUID(a), "other"),
            plugin="marketing",
        )
        == 0
    )
    assert (
        run_in_tenant(
            client,
            backplane_tenant,
            lambda k: form_submitted(k, uuid.UUID(a), "demo"),
            plugin="marketing",
        )
        == 1
    )
    assert (
        run_in_tenant(
            client,
            backplane_tenant,
            lambda k: form_submitted(k, uuid.UUID(a), "demo"),
            plugin="marketing",
        )
        == 0
    )  # once
    run_tasks(client, timeout=30)
    assert "form" in tags_of(client, a)
    assert funnel(client, on_form["id"])["entered"] == 1
    assert funnel(client, on_event["id"])["entered"] == 2


def test_score_crossing_and_branches(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    rule = {"kind": "event", "key": "visited_pricing", "points": 30}
    assert client.post("/api/marketing/scoring/rules", json=rule).status_code == 201
    define(client, "size", "number")
    hot = make_automation(
        client,
        name="hot lead",
        trigger={"type": "score_crossed", "threshold": 50},
        steps=[
            {
                "id": "which",
                "type": "branch",
                "cases": [
                    {
                        "filter": {"type": "attribute", "key": "size", "op": "gte", "value": 100},
                        "next": "big",
                    },
                    {"filter": {"type": "tag", "tag": "vip"}, "next": "vip"},
                ],
                "default": "small",
            },
            {"id": "big", "type": "add_tag", "tag": "big", "next": "end"},
            {"id": "vip", "type": "add_tag", "tag": "call", "next": "end"},
            {"id": "small", "type": "add_tag", "tag": "small"},
        ],
    )
    big = make_contact(client, "big@example.org", attributes={"size": 500})["id"]
    vip = make_contact(client, "vip@example.org", tags=["vip"])["id"]
    small = make_contact(client, "small@example.org")["id"]
    for email in ("big@example.org", "vip@example.org", "small@example.org"):
        for _ in range(2):  # 30 then 60 points: crosses 50 on the second
            sent = client.post(
                "/api/marketing/events", json={"email": email, "type": "visited_pricing"}
            )
            assert sent.status_code == 201
    run_tasks(client, timeout=30)
    assert "big" in tags_of(client, big)
    assert "small" not in tags_of(client, big)
    assert "call" in tags_of(client, vip)
    assert "small" in tags_of(client, small)
    assert funnel(client, hot["id"])["entered"] == 3
    # A third event keeps the score above: no second crossing.
    client.post(
        "/api/marketing/events", json={"email": "big@example.org", "type": "visited_pricing"}
    )
    run_tasks(client, timeout=30)
    assert funnel(client, hot["id"])["entered"] == 3
    [run] = progress(client, vip)
    assert run["history"][0]["outcome"] == {"case": 1}


def test_pause_and_archive(backplane_client: TestClient[Litestar], backplane_tenant: Any) -> None:
    client = backplane_client
    made = make_automation(
        client,
        name="slow",
        trigger={"type": "tag_added", "tag": "go"},
        steps=[{"id": "w", "type": "wait", "seconds": 1}, *TAG_STEP],
    )
    url = f"{AUTOMATIONS}/{made['id']}"
    first = make_contact(client, "one@example.org", tags=["go"])["id"]
    run_tasks(client, timeout=30)
    assert client.post(f"{url}/pause").json()["status"] == "paused"
    assert client.post(f"{url}/pause").status_code == 409
    second = make_contact(client, "two@example.org", tags=["go"])["id"]  # paused: not enrolled
    time.sleep(1.1)
    tick(client, backplane_tenant)
    assert not _reached(client, first)  # held while paused
    assert progress(client, second) == []
    assert client.post(f"{url}/activate").json()["status"] == "active"
    tick(client, backplane_tenant)
    assert _reached(client, first)
    third = make_contact(client, "three@example.org", tags=["go"])["id"]
    run_tasks(client, timeout=30)
    assert client.post(f"{url}/archive").json()["status"] == "archived"
    assert [r["status"] for r in progress(client, third)] == ["exited"]
    assert client.post(f"{url}/activate").status_code == 409
    assert client.post(f"{url}/explode").status_code == 404
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def _welcome(client: TestClient[Litestar], wait: int = 1) -> str:
    template = make_template(client)
    made = make_automation(
        client,
        name="welcome",
        trigger={"type": "tag_added", "tag": "trial"},
        steps=[
            {"id": "w", "type": "wait", "seconds": wait},
            {"id": "mail", "type": "send_email", "template_id": template},
            *TAG_STEP,
        ],
    )
    return str(made["id"])


def test_state_survives_a_new_app_instance_and_a_failed_step_leaves_nothing(
    backplane_plugins: Any, backplane_tenant: Any, sink: Sink
) -> None:
    from backplane_marketing.automations.engine import advance

    # An hour's wait: its queued wake-up stays out of the way, and the test advances the run
    # as of two hours later itself.
    later = datetime.now(UTC) + timedelta(hours=2)
    with TestClient(restarted_app(backplane_plugins)) as first:
        first.headers.update(backplane_tenant.headers)
        _welcome(first, wait=3600)
        contact = make_contact(first, "ada@example.org", tags=["trial"])["id"]
        run_tasks(first, timeout=30)
        [run] = progress(first, contact)
        assert (run["status"], run["step"]) == ("active", "mail")
    before = len(sink.received)

    with TestClient(restarted_app(backplane_plugins)) as second:  # as a restarted process
        second.headers.update(backplane_tenant.headers)
        [again] = progress(second, contact)
        assert again == run

        async def crash(kernel: Any) -> None:
            assert await advance(kernel, 10, later) == 1  # the step ran, its message queued...
            raise RuntimeError("worker killed")  # ... and the transaction never committed

        async def advance_later(kernel: Any) -> None:
            await advance(kernel, 10, later)

        with pytest.raises(RuntimeError, match="worker killed"):
            run_in_tenant(second, backplane_tenant, crash, plugin="marketing")
        run_tasks(second, timeout=30)
        assert progress(second, contact) == [run]
        assert not _reached(second, contact)
        assert second.get("/api/mail/messages").json() == []
        run_in_tenant(second, backplane_tenant, advance_later, plugin="marketing")
        run_in_tenant(second, backplane_tenant, advance_later, plugin="marketing")
        run_tasks(second, timeout=30)
        sink.wait_for(before + 1)
        time.sleep(0.3)
        assert len(sink.received) == before + 1  # exactly one message
        [done] = progress(second, contact)
        assert done["status"] == "finished"
        assert [h["step"] for h in done["history"]] == ["w", "mail", "tag"]
        assert _reached(second, contact)


def test_tenants_are_isolated(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    automation = _welcome(client)
    template = client.get(f"{AUTOMATIONS}/{automation}").json()["steps"][1]["template_id"]
    before = len(sink.received)
    ada = make_contact(client, "ada@example.org", tags=["trial"])["id"]
    run_tasks(client, timeout=30)
    time.sleep(1.1)
    tick(client, backplane_tenant)  # or the wait's own wake-up, whichever comes first
    [raw] = sink.wait_for(before + 1)[before:]
    token_url = (
        next(line for line in raw.decode().splitlines() if line.startswith("List-Unsubscribe: "))
        .split("<", 1)[1]
        .rstrip(">")
    )
    path = "/api/" + token_url.split("/api/", 1)[1]

    other = seed_tenant(client, "globex")
    client.headers.update(other.headers)
    url = f"{AUTOMATIONS}/{automation}"
    assert client.get(url).status_code == 404
    for action in ("activate", "pause", "archive"):
        assert client.post(f"{url}/{action}").status_code == 404
    assert client.get(f"{url}/funnel").status_code == 404
    assert client.get(f"{url}/runs").status_code == 404
    assert client.delete(url).status_code == 404
    assert client.get(f"{CONTACTS}/{ada}/automations").status_code == 404
    assert client.get(AUTOMATIONS).json() == []
    # B's own trial contact does not enter A's automation; A's template is not B's.
    make_contact(client, "bea@example.org", tags=["trial"])
    run_tasks(client, timeout=30)
    body = {
        "name": "steal",
        "trigger": {"type": "tag_added", "tag": "x"},
        "steps": [{"id": "m", "type": "send_email", "template_id": template}],
    }
    refused = client.post(AUTOMATIONS, json=body)
    assert refused.status_code == 422
    assert "no template" in refused.text
    # A's unsubscribe token under B's id: 404, and A's contact stays subscribed.
    swapped = path.replace(str(backplane_tenant.tenant_id), str(other.tenant_id))
    assert client.post(swapped).status_code == 404
    client.headers.update(backplane_tenant.headers)
    assert funnel(client, automation)["entered"] == 1
    events = client.get(f"{CONTACTS}/{ada}/events").json()
    assert "unsubscribed" not in [e["type"] for e in events]
    assert client.get(f"{url}/runs").json()[0]["contact_id"] == ada


STEPS_OK = [{"id": "t", "type": "add_tag", "tag": "x"}]


BAD: list[tuple[dict[str, Any], int, str]] = [
    ({"steps": []}, 400, "steps"),
    ({"steps": [{"id": "t", "type": "explode"}]}, 400, "type"),
    ({"trigger": {"type": "moon_phase"}}, 400, "trigger"),
    ({"steps": [{"id": "w", "type": "wait"}]}, 422, "wait"),
    ({"steps": [{"id": "w", "type": "wait", "days": 400}]}, 422, "366 days"),
    ({"steps": [{"id": "a b", "type": "add_tag", "tag": "x"}]}, 400, "id"),
    ({"steps": [*STEPS_OK, *STEPS_OK]}, 422, "used twice"),
    (
        {"steps": [{"id": "t", "type": "add_tag", "tag": "x", "next": "nowhere"}]},
        422,
        "no step 'nowhere'",
    ),
    (
        {"steps": [*STEPS_OK, {"id": "u", "type": "add_tag", "tag": "y", "next": "t"}]},
        422,
        "only go forward",
    ),
    (
        {"steps": [{"id": "c", "type": "condition", "filter": {"type": "bogus"}}]},
        400,
        "bad filter",
    ),
    (
        {
            "steps": [
                {
                    "id": "c",
                    "type": "condition",
                    "filter": {"type": "attribute", "key": "nope", "op": "eq", "value": 1},
                }
            ]
        },
        422,
        "step 'c'",
    ),
    (
        {"steps": [{"id": "s", "type": "set_attribute", "key": "nope", "value": 1}]},
        422,
        "unknown attribute",
    ),
    (
        {"steps": [{"id": "m", "type": "send_email", "template_id": str(uuid.uuid4())}]},
        422,
        "no template",
    ),
    ({"trigger": {"type": "list_joined", "list_id": str(uuid.uuid4())}}, 422, "no list"),
    ({"trigger": {"type": "score_crossed", "threshold": 101}}, 400, "threshold"),
    (
        {"steps": [{"id": f"s{i}", "type": "add_tag", "tag": "x"} for i in range(51)]},
        422,
        "max_automation_steps",
    ),
    ({"surprise": 1}, 400, "surprise"),
]
"""A change to a good definition, the status it gets, a word of the answer."""


def test_bad_definitions_are_refused(backplane_client: TestClient[Litestar]) -> None:
    body = {"name": "bad", "trigger": {"type": "tag_added", "tag": "x"}, "steps": STEPS_OK}
    for change, status, problem in BAD:
        refused = backplane_client.post(AUTOMATIONS, json=body | change)
        assert refused.status_code == status, (change, refused.text)
        assert problem in refused.text, (change, refused.text)
    assert backplane_client.get(AUTOMATIONS).json() == []


def test_a_definition_is_immutable_once_active(backplane_client: TestClient[Litestar]) -> None:
    client = backplane_client
    body = {"name": "draft", "trigger": {"type": "tag_added", "tag": "x"}, "steps": STEPS_OK}
    made = client.post(AUTOMATIONS, json=body)
    assert made.status_code == 201
    assert made.json()["status"] == "draft"
    url = f"{AUTOMATIONS}/{made.json()['id']}"
    changed = client.put(url, json=body | {"name": "renamed"})
    assert changed.status_code == 200
    assert changed.json()["name"] == "renamed"
    make_contact(client, "early@example.org", tags=["x"])  # a draft enrols nobody
    assert funnel(client, made.json()["id"])["entered"] == 0
    assert client.post(f"{url}/activate").json()["status"] == "active"
    frozen = client.put(url, json=body | {"name": "again"})
    assert frozen.status_code == 409
    assert "immutable" in frozen.text
    assert client.delete(url).status_code == 409
    assert client.get(url).json()["name"] == "renamed"
