"""Issue 23, acceptance 1: contacts imported, a segment built, a campaign sent through the
kernel's mail service to a real SMTP server (aiosmtpd in the test process). Every message
verifies with dkimpy, carries both RFC 8058 headers and a unique Message-ID; the one-click POST
unsubscribes that contact only (and the next campaign leaves it out); an open and a click are
counted once; a click token redirects only to the stored URL. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
from campaign_helpers import (
    PRICING_URL,
    Sink,
    dkim_record,
    make_segment,
    make_template,
    path_of,
    send_campaign,
    smtp_environ,
    smtp_sink,
    stats,
)
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import CONTACTS, IMPORTS, environ_for, upload

from backplane.testing import run_tasks

CSV = (
    "email,name,tags\n"
    "ada@example.org,Ada Lovelace,news\n"
    "bob@example.org,,news\n"
    "carol@example.org,Carol,news\n"
    "dan@example.org,Dan,other\n"
)
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
            # several task runs per campaign, for its recipient rows and its messages
            "BACKPLANE_PLUGIN__MARKETING__SEND_BATCH": "2",
            "BACKPLANE_PLUGIN__MARKETING__RECIPIENTS_BATCH": "2",
        }
    )


def _import(client: TestClient[Litestar]) -> None:
    started = client.post(IMPORTS, json={"file_id": upload(client, CSV.encode())})
    assert started.status_code == 202, started.text
    run_tasks(client, timeout=60)
    job = client.get(f"{IMPORTS}/{started.json()['id']}").json()
    assert (job["status"], job["progress"]["done"]) == ("succeeded", 4), job


def _headers(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return {
        k.lower(): v.strip() for k, v in (line.split(":", 1) for line in unfolded.split("\r\n"))
    }


def _by_recipient(received: list[bytes]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for raw in received:
        to = _headers(raw)["to"]
        assert to not in found, f"{to} got two messages"
        found[to] = raw
    return found


def test_journey_import_segment_send_track_unsubscribe(
    backplane_client: TestClient[Litestar], backplane_environ: dict[str, str], sink: Sink
) -> None:
    client = backplane_client
    name, value = dkim_record(backplane_environ)
    before = len(sink.received)
    _import(client)
    segment = make_segment(client)
    template = make_template(client)
    campaign = send_campaign(client, template, segment)
    received = sink.wait_for(before + 3)[before:]
    run_tasks(client, timeout=30)
    assert len(sink.received) == before + 3  # the contact outside the segment got nothing
    messages = _by_recipient(received)
    assert set(messages) == {"ada@example.org", "bob@example.org", "carol@example.org"}

    def published(qname: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if qname.decode().rstrip(".") == name else None

    ids = set()
    for raw in messages.values():
        assert dkim.verify(raw, dnsfunc=published), raw[:400]
        headers = _headers(raw)
        signed = re.search(r"\bh=([^;]+)", headers["dkim-signature"])
        assert signed
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(
            signed[1].replace(" ", "").lower().split(":")
        )
        assert re.fullmatch(
            r"<https://mail\.acme\.test/api/marketing/t/[^>]+/u/[^>]+>", headers["list-unsubscribe"]
        )
        assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
        ids.add(headers["message-id"])
    assert len(ids) == 3
    assert _headers(messages["ada@example.org"])["subject"] == "Hi Ada"
    assert _headers(messages["bob@example.org"])["subject"] == "Hi there"  # the fallback
    forged = messages["ada@example.org"].replace(b"=One-Click", b"=Two-Click")
    assert not dkim.verify(forged, dnsfunc=published)  # the signature covers RFC 8058's headers

    ada = _tracking_urls(messages["ada@example.org"])
    carol = _tracking_urls(messages["carol@example.org"])
    # An open and a click, each twice: counted once.
    for _ in range(2):
        pixel = client.get(path_of(ada["open"]), headers=BROWSER)
        assert pixel.status_code == 200
        assert pixel.headers["content-type"] == "image/gif"
        clicked = client.get(path_of(ada["click"]), headers=BROWSER, follow_redirects=False)
        assert clicked.status_code == 302
        assert clicked.headers["location"] == PRICING_URL
    # The redirect target never comes from the request.
    steered = client.get(
        path_of(ada["click"]) + "?url=https://evil.example/&next=https://evil.example/",
        headers=BROWSER,
        follow_redirects=False,
    )
    assert steered.headers["location"] == PRICING_URL
    forged_link = path_of(ada["click"]).rsplit("/", 1)[0] + "/https%3A%2F%2Fevil.example"
    assert client.get(forged_link, follow_redirects=False).status_code == 404
    # The confirmation page changes nothing; the one-click POST unsubscribes Carol only.
    page = client.get(path_of(carol["unsubscribe"]))
    assert page.status_code == 200
    assert "<form" in page.text
    assert stats(client, campaign)["unsubscribed"] == 0
    posted = client.post(
        path_of(carol["unsubscribe"]),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    numbers = stats(client, campaign)
    assert numbers["states"] == {"sent": 3}
    assert (numbers["opened"], numbers["clicked"], numbers["unsubscribed"]) == (1, 1, 1)
    assert numbers["links"] == [{"url": PRICING_URL, "clicks": 1}]
    ada_id = client.get(CONTACTS, params={"email": "ada@example.org"}).json()["items"][0]["id"]
    events = client.get(f"{CONTACTS}/{ada_id}/events").json()
    kinds = sorted(e["type"] for e in (events["items"] if isinstance(events, dict) else events))
    assert kinds.count("opened") == 1
    assert kinds.count("clicked") == 1

    # The next campaign to the same segment leaves the unsubscribed contact out.
    second = send_campaign(client, template, segment, name="follow-up")
    later = sink.wait_for(before + 5)[before + 3 :]
    run_tasks(client, timeout=30)
    assert set(_by_recipient(later)) == {"ada@example.org", "bob@example.org"}
    assert stats(client, second)["states"] == {"sent": 2, "suppressed": 1}


def _tracking_urls(raw: bytes) -> dict[str, str]:
    import email
    import email.policy

    message: Any = email.message_from_bytes(raw, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    links = re.findall(r'href="([^"]+)"', html)
    click = next(link for link in links if "/c/" in link)
    [pixel] = re.findall(r'<img src="([^"]+)"', html)
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe in links  # {{ unsubscribe_url }} in the body is the same URL
    return {"open": pixel, "click": click.replace("&amp;", "&"), "unsubscribe": unsubscribe}
