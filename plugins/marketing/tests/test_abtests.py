"""Issue 23, A/B tests of a campaign's subject or content: a sample of the segment split
among the variants, a stated metric (unique opens or clicks) and a wait; after it the winner
goes to the rest of the segment; every contact gets exactly one message (counted at a real
SMTP server, aiosmtpd); state and per-variant numbers are visible. SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import (
    CAMPAIGNS,
    Sink,
    contacts_for,
    make_segment,
    make_template,
    path_of,
    smtp_environ,
    smtp_sink,
)
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import as_utc, environ_for

from backplane.testing import delayed_tasks, run_in_tenant, run_tasks, seed_tenant
from backplane_marketing.abtests.service import ab_tick

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink) -> dict[str, str]:
    return (
        environ_for(request, tmp_path)
        | smtp_environ(sink)
        | {
            "BACKPLANE_PLUGIN__MARKETING__BOT_CLICK_SECONDS": "0",
            # several task runs per phase, for its recipient rows and its messages
            "BACKPLANE_PLUGIN__MARKETING__SEND_BATCH": "3",
            "BACKPLANE_PLUGIN__MARKETING__RECIPIENTS_BATCH": "4",
        }
    )


def draft(client: TestClient[Litestar], people: int, template_id: str | None = None) -> str:
    emails = [f"p{i:02d}@example.org" for i in range(people)]
    contacts_for(client, *emails, tags=["news"])
    body = {
        "name": "launch",
        "template_id": template_id or make_template(client),
        "segment_id": make_segment(client),
    }
    made = client.post(CAMPAIGNS, json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def ab(client: TestClient[Litestar], campaign: str) -> dict[str, Any]:
    shown = client.get(f"{CAMPAIGNS}/{campaign}/ab-test")
    assert shown.status_code == 200, shown.text
    body: dict[str, Any] = shown.json()
    return body


def tick(client: TestClient[Litestar], tenant: Any) -> None:
    run_in_tenant(client, tenant, ab_tick, plugin="marketing")
    run_tasks(client, timeout=60)


def test_subject_test_by_opens_then_the_winner_to_the_rest(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    campaign = draft(client, 20)
    url = f"{CAMPAIGNS}/{campaign}/ab-test"
    configured = client.put(
        url,
        json={
            "metric": "opens",
            "sample_percent": 40,
            "wait_seconds": 3,
            "variants": [
                {"label": "A", "subject": "A: news for {{ contact.email }}"},
                {"label": "B", "subject": "B: news for {{ contact.email }}"},
            ],
        },
    )
    assert configured.status_code == 200, configured.text
    assert configured.json()["campaign_status"] == "ab_ready"
    assert client.post(f"{CAMPAIGNS}/{campaign}/send", json={}).status_code == 409
    before = len(sink.received)
    started = client.post(f"{url}/start")
    assert started.status_code == 202, started.text
    run_tasks(client, timeout=60)
    sink.wait_for(before + 8)
    time.sleep(0.5)
    sample = sink.messages()[before:]
    assert len(sample) == 8  # 40 % of 20, four a variant
    by_variant = Counter(str(m["Subject"])[0] for m in sample)
    assert by_variant == {"A": 4, "B": 4}
    state = ab(client, campaign)
    assert state["state"] == "waiting"
    assert [(v["label"], v["sample_sent"]) for v in state["variants"]] == [("A", 4), ("B", 4)]
    # the decision is queued for the end of the wait (the tick below only comes first here)
    [(_, wake)] = delayed_tasks(client, "marketing.ab_tick")
    due = as_utc(state["due_at"])
    assert due + timedelta(seconds=1) <= wake <= due + timedelta(seconds=2)
    # three of B's recipients open it, one of A's (twice: counted once)
    opens = {"A": 1, "B": 3}
    for message in sample:
        label = str(message["Subject"])[0]
        if opens[label]:
            opens[label] -= 1
            html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
            pixel = path_of(re.findall(r'<img src="([^"]+)"', html)[0])
            for _ in range(2 if label == "A" else 1):
                assert client.get(pixel, headers=BROWSER).status_code == 200
    tick(client, backplane_tenant)  # the wait is not over: nothing decided
    assert ab(client, campaign)["state"] == "waiting"
    assert client.post(f"{url}/start").status_code == 409
    time.sleep(3.1)
    tick(client, backplane_tenant)
    sink.wait_for(before + 20)
    time.sleep(0.5)
    everyone = sink.messages()[before:]
    assert len(everyone) == 20
    recipients = Counter(str(m["To"]) for m in everyone)
    assert len(recipients) == 20  # nobody twice
    assert set(recipients.values()) == {1}
    rest = everyone[8:]
    assert {str(m["Subject"])[0] for m in rest} == {"B"}
    state = ab(client, campaign)
    assert (state["state"], state["winner"], state["campaign_status"]) == (
        "finished",
        "B",
        "finished",
    )
    numbers = {v["label"]: v for v in state["variants"]}
    assert (numbers["A"]["opened"], numbers["B"]["opened"]) == (1, 3)
    assert (numbers["A"]["open_rate"], numbers["B"]["open_rate"]) == (0.25, 0.75)
    assert (numbers["A"]["rest_sent"], numbers["B"]["rest_sent"]) == (0, 12)
    assert numbers["B"]["winner"] is True
    assert numbers["A"]["winner"] is False
    campaign_stats = client.get(f"{CAMPAIGNS}/{campaign}/stats").json()
    assert campaign_stats["states"] == {"sent": 20}


def test_content_test_by_clicks_decided_now_and_bad_input(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    plain = make_template(client, "plain")
    fancy = make_template(
        client,
        "fancy",
        html='<html><body><p>Fancy</p><a href="https://shop.example.org/fancy">Buy</a></body></html>',
    )
    campaign = draft(client, 9, plain)
    url = f"{CAMPAIGNS}/{campaign}/ab-test"
    variants = [{"label": "plain"}, {"label": "fancy", "template_id": fancy}]
    body = {"metric": "clicks", "sample_percent": 50, "wait_seconds": 86_400, "variants": variants}
    for bad, status in (
        ({**body, "variants": variants[:1]}, 400),
        ({**body, "metric": "replies"}, 400),
        ({**body, "sample_percent": 0}, 400),
        ({**body, "variants": [variants[0], {"label": "plain", "subject": "x"}]}, 422),
        ({**body, "variants": [variants[0], {"label": "b"}]}, 422),  # the same message twice
        ({**body, "variants": [variants[0], {"label": "b", "subject": "{% if %}"}]}, 422),
        (
            {
                **body,
                "variants": [
                    variants[0],
                    {"label": "b", "template_id": "00000000-0000-0000-0000-000000000001"},
                ],
            },
            404,
        ),
    ):
        refused = client.put(url, json=bad)
        assert refused.status_code == status, (bad, refused.text)
    assert client.get(url).status_code == 404  # nothing configured by the refusals
    assert client.post(f"{url}/start").status_code == 404
    assert client.put(url, json=body).status_code == 200
    assert client.post(f"{url}/decide").status_code == 409  # not started
    before = len(sink.received)
    assert client.post(f"{url}/start").status_code == 202
    run_tasks(client, timeout=60)
    sink.wait_for(before + 5)  # ceil(50 % of 9)
    time.sleep(0.5)
    sample = sink.messages()[before:]
    assert len(sample) == 5
    fancy_sent = [m for m in sample if "Fancy" in m.get_body(("html",)).get_content()]  # type: ignore[union-attr]
    assert len(fancy_sent) in (2, 3)
    html = fancy_sent[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    click = next(link for link in re.findall(r'href="([^"]+)"', html) if "/c/" in link)
    clicked = client.get(path_of(click), headers=BROWSER, follow_redirects=False)
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://shop.example.org/fancy"
    # another tenant sees nothing of it and cannot move it
    other = seed_tenant(client, "globex")
    client.headers.update(other.headers)
    assert client.get(url).status_code == 404
    assert client.post(f"{url}/decide").status_code == 404
    assert client.post(f"{url}/cancel").status_code == 404
    client.headers.update(backplane_tenant.headers)
    decided = client.post(f"{url}/decide")  # the wait is a day: decided by hand
    assert decided.status_code == 200, decided.text
    assert decided.json()["winner"] == "fancy"
    run_tasks(client, timeout=60)
    sink.wait_for(before + 9)
    time.sleep(0.5)
    everyone = sink.messages()[before:]
    assert len(everyone) == 9
    assert len({str(m["To"]) for m in everyone}) == 9
    for message in everyone[5:]:
        assert "Fancy" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    state = ab(client, campaign)
    assert state["state"] == "finished"
    numbers = {v["label"]: v for v in state["variants"]}
    assert numbers["fancy"]["clicked"] == 1
    assert numbers["plain"]["clicked"] == 0
    assert numbers["fancy"]["rest_sent"] == 4
    assert client.post(f"{url}/cancel").status_code == 409


def test_a_cancelled_test_sends_no_more(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    campaign = draft(client, 6)
    url = f"{CAMPAIGNS}/{campaign}/ab-test"
    body = {
        "metric": "opens",
        "sample_percent": 50,
        "wait_seconds": 2,
        "variants": [{"label": "A", "subject": "one"}, {"label": "B", "subject": "two"}],
    }
    assert client.put(url, json=body).status_code == 200
    removed = client.delete(url)
    assert removed.status_code == 204
    assert client.get(f"{CAMPAIGNS}/{campaign}").json()["status"] == "draft"
    assert client.put(url, json=body).status_code == 200
    before = len(sink.received)
    assert client.post(f"{url}/start").status_code == 202
    run_tasks(client, timeout=60)
    sink.wait_for(before + 3)
    cancelled = client.post(f"{url}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["campaign_status"] == "cancelled"
    time.sleep(4.5)  # the wait (2 s) is over and its queued decision (1-2 s after) has run
    tick(client, backplane_tenant)  # and a tick finds nothing either: the test is cancelled
    time.sleep(0.5)
    assert len(sink.received) == before + 3
    assert ab(client, campaign)["state"] == "cancelled"
