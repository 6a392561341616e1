"""Campaign templates and the life of a campaign: templates are checked when saved and
rendered in Jinja2's sandbox (no code, no files, an output limit) with fallbacks; preview and
test send; a campaign is scheduled, paused, resumed, cancelled (409 for a move its state does
not allow), and the tenant's rate bounds how many messages it queues per minute."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from campaign_helpers import (
    CAMPAIGNS,
    TEMPLATES,
    Sink,
    contacts_for,
    make_segment,
    make_template,
    smtp_environ,
    smtp_sink,
    stats,
)
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import base_environ

from backplane.testing import delayed_tasks, run_tasks


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


@pytest.fixture
def backplane_environ(tmp_path: Path, sink: Sink) -> dict[str, str]:
    return (
        base_environ(tmp_path)
        | smtp_environ(sink)
        | {
            "BACKPLANE_PLUGIN__MARKETING__SEND_RATE_PER_MINUTE": "2",
            "BACKPLANE_PLUGIN__MARKETING__SEND_BATCH": "1",
            "BACKPLANE_PLUGIN__MARKETING__MAX_RENDERED_CHARS": "5000",
        }
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "sandbox"),
        ("{% include '/etc/passwd' %}", "template"),
        ("{% for i in range(100000) %}xxxxxxxx{% endfor %}", "renders past 5000"),
        ("{{ (''.__class__)() }}", "sandbox"),
    ],
)
def test_templates_run_in_the_sandbox(
    backplane_client: TestClient[Litestar], source: str, problem: str
) -> None:
    template = make_template(backplane_client, text=source)
    shown = backplane_client.post(f"{TEMPLATES}/{template}/preview", json={})
    assert shown.status_code == 422, shown.text
    assert problem in shown.json()["detail"]


def test_bad_templates_are_refused_when_saved(backplane_client: TestClient[Litestar]) -> None:
    body = {"name": "broken", "subject": "Hi {{ contact.name ", "text": "x"}
    refused = backplane_client.post(TEMPLATES, json=body)
    assert refused.status_code == 422
    assert "subject" in refused.json()["detail"]
    make_template(backplane_client, name="twice")
    again = backplane_client.post(TEMPLATES, json={"name": "twice", "subject": "s", "text": "t"})
    assert again.status_code == 409
    assert backplane_client.post(TEMPLATES, json={"name": "x"}).status_code == 400


def test_preview_falls_back_and_a_test_send_arrives(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    template = make_template(client)
    anonymous = client.post(f"{TEMPLATES}/{template}/preview", json={"sample": {}})
    assert anonymous.json()["subject"] == "Hi there"
    [contact] = contacts_for(client, "zoe@example.org", tags=[]).values()
    client.patch(f"/api/marketing/contacts/{contact}", json={"name": "Zoë <b>Q</b>"})
    shown = client.post(f"{TEMPLATES}/{template}/preview", json={"contact_id": contact}).json()
    assert shown["subject"] == "Hi Zoë"
    assert "Zoë &lt;b&gt;Q&lt;/b&gt;" in shown["html"]  # autoescaped
    before = len(sink.received)
    sent = client.post(f"{TEMPLATES}/{template}/test", json={"to": "me@example.org"})
    assert sent.status_code == 202, sent.text
    run_tasks(client, timeout=30)
    delivered = client.get(f"/api/mail/messages/{sent.json()['message_id']}").json()
    assert delivered["status"] == "sent", delivered
    sink.wait_for(before + 1)
    [message] = sink.messages()[before : before + 1]
    assert str(message["Subject"]) == "[Test] Hi there"
    bad = client.post(f"{TEMPLATES}/{template}/test", json={"to": "not an address"})
    assert bad.status_code == 422


def _draft(client: TestClient[Litestar]) -> str:
    made = client.post(
        CAMPAIGNS,
        json={
            "name": "rated",
            "template_id": make_template(client),
            "segment_id": make_segment(client),
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_schedule_pause_resume_cancel_and_the_rate(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    contacts_for(client, *(f"p{i}@example.org" for i in range(5)), tags=["news"])
    campaign = _draft(client)
    url = f"{CAMPAIGNS}/{campaign}"
    assert client.post(f"{url}/resume").status_code == 409  # a draft is not paused
    naive = client.post(f"{url}/send", json={"at": "2030-01-01T09:00:00"})
    assert naive.status_code == 422
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = client.post(f"{url}/send", json={"at": later})
    assert scheduled.json()["status"] == "scheduled"
    assert client.post(f"{url}/send", json={}).status_code == 409  # not twice
    assert client.post(f"{url}/pause").json()["status"] == "paused"
    before = len(sink.received)
    assert client.post(f"{url}/resume").json()["status"] == "sending"
    run_tasks(client, timeout=30)
    sink.wait_for(before + 2)
    numbers = stats(client, campaign)
    # The rate (2 a minute) stopped the chain: two sent, three waiting for the next minute.
    assert numbers["states"] == {"sent": 2, "pending": 3}
    assert client.get(url).json()["status"] == "sending"
    assert client.post(f"{url}/cancel").json()["status"] == "cancelled"
    assert client.post(f"{url}/resume").status_code == 409
    run_tasks(client, timeout=30)
    assert len(sink.received) == before + 2
    assert stats(client, campaign)["states"] == {"sent": 2, "pending": 3}
    assert client.get(f"{CAMPAIGNS}/{campaign}/nothing").status_code == 404


def test_a_scheduled_campaign_starts_at_its_time_and_the_rate_wakes_the_rest(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    """No periodic tick here: the send request queues the start for its time, and a chain the
    rate stopped queues its resumption for when the rate has room again."""
    client = backplane_client
    contacts_for(client, *(f"s{i}@example.org" for i in range(3)), tags=["news"])
    campaign = _draft(client)
    url = f"{CAMPAIGNS}/{campaign}"
    at = datetime.now(UTC) + timedelta(seconds=2)
    before = len(sink.received)
    assert client.post(f"{url}/send", json={"at": at.isoformat()}).json()["status"] == "scheduled"
    [(_, wake)] = delayed_tasks(client, "marketing.campaign_tick")
    assert at + timedelta(seconds=1) <= wake <= at + timedelta(seconds=2)
    run_tasks(client)  # nothing is due yet
    assert client.get(url).json()["status"] == "scheduled"
    assert len(sink.received) == before
    started = datetime.now(UTC)
    deadline = time.monotonic() + 60
    while stats(client, campaign)["states"].get("sent") != 2:
        assert time.monotonic() < deadline, stats(client, campaign)
        time.sleep(0.1)
    sink.wait_for(before + 2)
    assert client.get(url).json()["status"] == "sending"
    # The rate (2 a minute) stopped the chain with one contact left: its resumption is queued
    # for a minute after the first of the two messages, not polled for every minute.
    [(_, resume)] = delayed_tasks(client, "marketing.campaign_tick")
    assert started + timedelta(seconds=60) <= resume <= datetime.now(UTC) + timedelta(seconds=62)
    assert stats(client, campaign)["states"] == {"sent": 2, "pending": 1}
