"""Issue 23, automations: a tag fires a sequence; the run waits, a condition branches on the
contact's attributes, one branch sends an email (received by a real SMTP server, DKIM-signed,
with both RFC 8058 headers, one-click unsubscribe) and changes a tag, the other removes one.
Each contact's progress and the funnel are visible; state survives a new app instance; a step
whose transaction fails leaves nothing behind and is redone once; tenants are isolated; bad
definitions are refused with a clear 4xx."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
from automation_helpers import QUIET_SCHEDULER, funnel, make_automation, progress, tags_of, tick
from campaign_helpers import Sink, dkim_record, make_template, path_of, smtp_environ, smtp_sink
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import (
    CONTACTS,
    IMPORTS,
    as_utc,
    define,
    environ_for,
    make_contact,
    make_list,
    upload,
)

from backplane.testing import delayed_tasks, run_in_tenant, run_tasks


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink) -> dict[str, str]:
    return environ_for(request, tmp_path) | smtp_environ(sink) | QUIET_SCHEDULER


def _welcome(client: TestClient[Litestar], template: str, wait: int = 1) -> dict[str, Any]:
    """Tag ``trial`` -> wait -> plan is pro? -> email + tag ``welcomed`` | remove ``trial``."""
    return make_automation(
        client,
        name="welcome",
        trigger={"type": "tag_added", "tag": "trial"},
        steps=[
            {"id": "pause", "type": "wait", "seconds": wait},
            {
                "id": "is_pro",
                "type": "condition",
                "filter": {"type": "attribute", "key": "plan", "op": "eq", "value": "pro"},
                "then": "mail",
                "else": "untrial",
            },
            {"id": "mail", "type": "send_email", "template_id": template},
            {"id": "welcomed", "type": "add_tag", "tag": "welcomed"},
            {"id": "remember", "type": "set_attribute", "key": "stage", "value": "onboarded"},
            {"id": "done", "type": "wait", "seconds": 1, "next": "end"},
            {"id": "untrial", "type": "remove_tag", "tag": "trial"},
        ],
    )


def _headers(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return {
        k.lower(): v.strip() for k, v in (line.split(":", 1) for line in unfolded.split("\r\n"))
    }


def test_trigger_wait_condition_email_tag(
    backplane_client: TestClient[Litestar],
    backplane_tenant: Any,
    backplane_environ: dict[str, str],
    sink: Sink,
) -> None:
    client = backplane_client
    name, value = dkim_record(backplane_environ)
    define(client, "plan", "string")
    define(client, "stage", "string")
    template = make_template(client)
    automation = _welcome(client, template)["id"]
    ada = make_contact(client, "ada@example.org", name="Ada L", attributes={"plan": "pro"})["id"]
    bob = make_contact(client, "bob@example.org", attributes={"plan": "free"})["id"]
    make_contact(client, "cy@example.org", tags=["other"])  # not triggered
    before = len(sink.received)
    for contact in (ada, bob):
        changed = client.patch(f"{CONTACTS}/{contact}", json={"tags": ["trial"]})
        assert changed.status_code == 200, changed.text
    run_tasks(client, timeout=30)
    # Both entered and wait: their next step is the condition.
    for contact in (ada, bob):
        [run] = progress(client, contact)
        assert (run["status"], run["step"], run["automation_id"]) == (
            "active",
            "is_pro",
            automation,
        )
        assert [h["step"] for h in run["history"]] == ["pause"]
    numbers = funnel(client, automation)
    assert numbers["entered"] == 2
    assert {s["id"]: s["waiting"] for s in numbers["steps"]}["is_pro"] == 2
    # each advance that began a wait queued one for its end (at most one per due second)
    dues = [as_utc(progress(client, c)[0]["next_run_at"]) for c in (ada, bob)]
    wakes = [when for _, when in delayed_tasks(client, "marketing.automation_advance")]
    assert 1 <= len(wakes) <= 2
    assert all(
        min(dues) + timedelta(seconds=1) <= w <= max(dues) + timedelta(seconds=2) for w in wakes
    )
    tick(client, backplane_tenant)  # too early: nothing moves
    assert progress(client, ada)[0]["step"] == "is_pro"
    assert len(sink.received) == before

    time.sleep(1.1)
    tick(client, backplane_tenant)
    [raw] = sink.wait_for(before + 1)[before:]
    headers = _headers(raw)
    assert headers["to"] == "ada@example.org"
    assert headers["subject"] == "Hi Ada"

    def published(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname.decode().rstrip(".") == name else None

    assert dkim.verify(raw, dnsfunc=published)
    assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
    unsubscribe = re.fullmatch(
        r"<(https://mail\.acme\.test/api/marketing/t/[^>]+/au/[^>]+)>", headers["list-unsubscribe"]
    )
    assert unsubscribe
    assert "welcomed" in tags_of(client, ada)
    assert client.get(f"{CONTACTS}/{ada}").json()["attributes"]["stage"] == "onboarded"
    assert tags_of(client, bob) == []  # the other branch removed "trial"
    [ada_run] = progress(client, ada)
    assert ada_run["step"] is None
    # in its last wait (1 s), or past it if the wait's own wake-up has run meanwhile
    assert ada_run["status"] in {"active", "finished"}
    assert [h["step"] for h in ada_run["history"]] == [
        "pause",
        "is_pro",
        "mail",
        "welcomed",
        "remember",
        "done",
    ]
    assert ada_run["history"][1]["outcome"] == {"matched": True}
    [bob_run] = progress(client, bob)
    assert bob_run["status"] == "finished"
    assert [h["step"] for h in bob_run["history"]] == ["pause", "is_pro", "untrial"]
    reached = {s["id"]: s["reached"] for s in funnel(client, automation)["steps"]}
    assert reached == {
        "pause": 2,
        "is_pro": 2,
        "mail": 1,
        "welcomed": 1,
        "remember": 1,
        "done": 1,
        "untrial": 1,
    }
    time.sleep(1.1)
    tick(client, backplane_tenant)
    assert progress(client, ada)[0]["status"] == "finished"
    assert funnel(client, automation)["by_status"] == {"finished": 2}

    # Tagged again: no second pass (no re-entry), no second message.
    client.patch(f"{CONTACTS}/{ada}", json={"tags": []})
    client.patch(f"{CONTACTS}/{ada}", json={"tags": ["trial"]})
    run_tasks(client, timeout=30)
    assert len(progress(client, ada)) == 1

    # The one-click unsubscribe: the page changes nothing, the POST suppresses Ada only.
    url = path_of(unsubscribe[1])
    assert client.get(url).status_code == 200
    posted = client.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    events = client.get(f"{CONTACTS}/{ada}/events").json()
    assert [e["type"] for e in events].count("unsubscribed") == 1
    assert client.post(url[:-4] + "nope").status_code == 404


@pytest.mark.parametrize(
    "backplane_environ", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_advances_at_once_never_take_the_same_run(
    backplane_client: TestClient[Litestar], backplane_tenant: Any
) -> None:
    """PostgreSQL: a run locked by one advance (another worker's transaction) is skipped by a
    second advance running meanwhile (``SKIP LOCKED``), which takes the others; each run's
    step is done once."""
    from sqlalchemy import select

    from backplane_marketing.automations.engine import advance
    from backplane_marketing.automations.models import AutomationRun

    client = backplane_client
    make_automation(
        client,
        name="locks",
        trigger={"type": "tag_added", "tag": "go"},
        steps=[
            {"id": "w", "type": "wait", "seconds": 1},
            {"id": "t", "type": "add_tag", "tag": "reached"},
        ],
    )
    contacts = [make_contact(client, f"l{i}@example.org", tags=["go"])["id"] for i in range(3)]
    run_tasks(client, timeout=30)
    time.sleep(1.1)

    async def work(first: Any) -> tuple[int, int]:
        locked = await first.db.scalar(
            select(AutomationRun).order_by(AutomationRun.id).limit(1).with_for_update()
        )
        assert locked is not None
        async with first.tenant(first.tenant_id) as second:  # another session, meanwhile
            taken = await advance(second, 10)
        return taken, await advance(first, 10)

    assert run_in_tenant(client, backplane_tenant, work, plugin="marketing") == (2, 1)
    for contact in contacts:
        [run] = progress(client, contact)
        assert run["status"] == "finished"
        assert [h["step"] for h in run["history"]] == ["w", "t"]
        assert "reached" in tags_of(client, contact)


def test_an_import_starts_the_automations_of_the_tags_and_list_it_adds(
    backplane_client: TestClient[Litestar],
) -> None:
    client = backplane_client
    news = make_list(client, "news")
    by_tag = make_automation(
        client,
        name="tagged",
        trigger={"type": "tag_added", "tag": "vip"},
        steps=[{"id": "t", "type": "add_tag", "tag": "seen"}],
    )
    by_list = make_automation(
        client,
        name="listed",
        trigger={"type": "list_joined", "list_id": news},
        steps=[{"id": "t", "type": "add_tag", "tag": "welcomed"}],
    )
    old = make_contact(client, "old@example.org", tags=["vip"])["id"]  # vip before the import
    gone = make_contact(client, "gone@example.org", lists=[{"list_id": news}])["id"]
    left = client.patch(
        f"{CONTACTS}/{gone}", json={"lists": [{"list_id": news, "status": "unsubscribed"}]}
    )
    assert left.status_code == 200, left.text
    run_tasks(client, timeout=30)
    rows = "email,tags\nold@example.org,vip\nnew@example.org,vip\nplain@example.org,\n"
    rows += "gone@example.org,\n"
    started = client.post(
        IMPORTS, json={"file_id": upload(client, rows.encode()), "options": {"list_id": news}}
    )
    assert started.status_code == 202, started.text
    run_tasks(client, timeout=60)
    assert client.get(f"{IMPORTS}/{started.json()['id']}").json()["status"] == "succeeded"
    # "vip" is new for new@ only (old@ had it: no second pass); everyone but gone@ (who
    # unsubscribed and stays so) joined the list now; gone@ had its one pass before.
    assert funnel(client, by_tag["id"])["entered"] == 2
    assert funnel(client, by_list["id"])["entered"] == 4
    assert funnel(client, by_list["id"])["by_status"] == {"finished": 4}
    emails = {c["email"]: c for c in client.get(CONTACTS, params={"limit": 10}).json()["items"]}
    assert {"seen", "welcomed", "vip"} <= set(emails["new@example.org"]["tags"])
    assert "welcomed" in emails["plain@example.org"]["tags"]
    assert len(progress(client, old)) == 2  # the tag's pass (at creation) and the list's
