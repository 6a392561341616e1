"""Issue 23, acceptance 5 (campaign half) and the tracking rules: a tracking or unsubscribe
token of tenant A never acts under tenant B (nor B's under A); erasing a contact removes its
recipient rows, clicks and timeline; scanner clicks (too soon after sending, or a scanner's
User-Agent) are redirected but not counted; opens and clicks at once count once; the bounce
webhook needs the tenant's secret and suppresses the contact for later campaigns."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from campaign_helpers import (
    PRICING_URL,
    Sink,
    contacts_for,
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
from marketing_helpers import environ_for

from backplane.testing import seed_tenant

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    with smtp_sink() as box:
        yield box


BOT_WINDOW_S = 3
"""``bot_click_seconds`` here: a click this soon after sending is a scanner's. Wider than the
1 s default: the test's first click comes after the message crossed the SMTP sink, which once
took over a second on a loaded CI machine, and was then counted."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path, sink: Sink) -> dict[str, str]:
    window = {"BACKPLANE_PLUGIN__MARKETING__BOT_CLICK_SECONDS": str(BOT_WINDOW_S)}
    return environ_for(request, tmp_path) | smtp_environ(sink) | window


def _sent_to(sink: Sink, before: int, count: int) -> dict[str, dict[str, str]]:
    """The tracking URLs of each new message, by recipient."""
    sink.wait_for(before + count)
    found: dict[str, dict[str, str]] = {}
    for message in sink.messages()[before:]:
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        links = re.findall(r'href="([^"]+)"', html)
        found[str(message["To"])] = {
            "open": re.findall(r'<img src="([^"]+)"', html)[0],
            "click": next(link for link in links if "/c/" in link).replace("&amp;", "&"),
            "unsubscribe": str(message["List-Unsubscribe"]).strip("<>"),
        }
    return found


def _campaign(client: TestClient[Litestar], sink: Sink, *emails: str) -> tuple[str, Any]:
    before = len(sink.received)
    contacts_for(client, *emails, tags=["news"])
    campaign = send_campaign(client, make_template(client), make_segment(client))
    return campaign, _sent_to(sink, before, len(emails))


def _swap_tenant(url: str, tenant_id: Any) -> str:
    return re.sub(r"/t/[0-9a-f-]{36}/", f"/t/{tenant_id}/", path_of(url))


def test_a_token_of_one_tenant_never_acts_on_another(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    a_campaign, a_urls = _campaign(client, sink, "ann@example.org")
    other = seed_tenant(client, "globex")
    before = len(sink.received)
    client.headers.update(other.headers)
    b_campaign, b_urls = _campaign(client, sink, "bea@example.org")
    time.sleep(
        BOT_WINDOW_S + 0.1
    )  # past the scanner window: only the tenant check can refuse below
    a, b = a_urls["ann@example.org"], b_urls["bea@example.org"]
    for urls, tenant in ((a, other.tenant_id), (b, backplane_tenant.tenant_id)):
        assert client.get(_swap_tenant(urls["open"], tenant), headers=BROWSER).status_code == 404
        clicked = client.get(
            _swap_tenant(urls["click"], tenant), headers=BROWSER, follow_redirects=False
        )
        assert clicked.status_code == 404
        assert client.get(_swap_tenant(urls["unsubscribe"], tenant)).status_code == 404
        assert client.post(_swap_tenant(urls["unsubscribe"], tenant)).status_code == 404
    # A's recipient token with B's link token (both real, different tenants): 404.
    mixed = path_of(a["click"]).rsplit("/", 1)[0] + "/" + b["click"].rsplit("/", 1)[1]
    assert client.get(mixed, headers=BROWSER, follow_redirects=False).status_code == 404
    assert len(sink.received) == before + 1
    # As B, A's campaign and template are not found; and nothing was counted anywhere.
    assert client.get(f"/api/marketing/campaigns/{a_campaign}").status_code == 404
    assert client.get(f"/api/marketing/campaigns/{a_campaign}/stats").status_code == 404
    numbers = stats(client, b_campaign)
    assert (numbers["opened"], numbers["clicked"], numbers["unsubscribed"]) == (0, 0, 0)
    client.headers.update(backplane_tenant.headers)
    numbers = stats(client, a_campaign)
    assert (numbers["opened"], numbers["clicked"], numbers["unsubscribed"]) == (0, 0, 0)


def test_scanners_are_redirected_but_not_counted_and_racing_clicks_count_once(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    campaign, urls = _campaign(client, sink, "sam@example.org")
    link = path_of(urls["sam@example.org"]["click"])
    pixel = path_of(urls["sam@example.org"]["open"])
    early = client.get(link, headers=BROWSER, follow_redirects=False)  # within the window
    assert (early.status_code, early.headers["location"]) == (302, PRICING_URL)
    time.sleep(BOT_WINDOW_S + 0.1)
    scanner = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"}
    assert client.get(link, headers=scanner, follow_redirects=False).status_code == 302
    assert client.get(pixel, headers=scanner).status_code == 200
    assert (stats(client, campaign)["clicked"], stats(client, campaign)["opened"]) == (0, 0)

    def hit(path: str) -> int:
        return int(client.get(path, headers=BROWSER, follow_redirects=False).status_code)

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(hit, [link, pixel] * 8))
    assert set(codes) <= {200, 302}
    numbers = stats(client, campaign)
    assert (numbers["opened"], numbers["clicked"]) == (1, 1)
    assert numbers["links"] == [{"url": PRICING_URL, "clicks": 1}]


def test_erasing_a_contact_removes_its_tracking(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    campaign, urls = _campaign(client, sink, "eve@example.org", "kim@example.org")
    time.sleep(BOT_WINDOW_S + 0.1)
    for person in ("eve@example.org", "kim@example.org"):
        assert client.get(path_of(urls[person]["open"]), headers=BROWSER).status_code == 200
        clicked = client.get(
            path_of(urls[person]["click"]), headers=BROWSER, follow_redirects=False
        )
        assert clicked.status_code == 302
    erased = client.post("/api/privacy/erase", json={"email": "eve@example.org"})
    assert erased.status_code == 200, erased.text
    report = erased.json()["plugins"]["marketing"]
    assert report["marketing_link_clicks"] == 1
    assert report["marketing_recipients"] == 1
    assert report["marketing_events"] == 2  # opened, clicked
    numbers = stats(client, campaign)
    assert (numbers["recipients"], numbers["opened"], numbers["clicked"]) == (1, 1, 1)
    assert numbers["links"] == [{"url": PRICING_URL, "clicks": 1}]  # Kim's only
    gone = client.get(path_of(urls["eve@example.org"]["open"]), headers=BROWSER)
    assert gone.status_code == 404  # the token went with the contact


def test_the_bounce_webhook_needs_the_secret_and_suppresses(
    backplane_client: TestClient[Litestar], backplane_tenant: Any, sink: Sink
) -> None:
    client = backplane_client
    made = client.post("/api/marketing/webhook-secret")
    assert made.status_code == 201, made.text
    secret, url = made.json()["secret"], made.json()["url"]
    contacts_for(client, "bounce@example.org", "fine@example.org", tags=["news"])
    body = {"email": "Bounce@Example.org", "type": "bounce"}
    anonymous = TestClient(client.app, base_url=str(client.base_url))
    anonymous.blocking_portal = client.blocking_portal
    try:
        assert anonymous.post(path_of(url), json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-secret"}
        assert anonymous.post(path_of(url), json=body, headers=wrong).status_code == 401
        other = seed_tenant(client, "initech")  # a secret of A does not open B's webhook
        elsewhere = _swap_tenant(url, other.tenant_id)
        right = {"Authorization": f"Bearer {secret}"}
        assert anonymous.post(elsewhere, json=body, headers=right).status_code == 401
        done = anonymous.post(path_of(url), json=body, headers=right)
        assert done.status_code == 200
        assert done.json() == {"suppressed": True}
        unknown = {"email": "nobody@example.org", "type": "complaint"}
        assert anonymous.post(path_of(url), json=unknown, headers=right).json() == {
            "suppressed": False
        }
        bad = anonymous.post(path_of(url), json={"email": "x", "type": "spam"}, headers=right)
        assert bad.status_code == 400
    finally:
        del anonymous.blocking_portal
    before = len(sink.received)
    campaign = send_campaign(client, make_template(client), make_segment(client))
    assert set(_sent_to(sink, before, 1)) == {"fine@example.org"}
    assert stats(client, campaign)["states"] == {"sent": 1, "suppressed": 1}


DSN = (
    "From: MAILER-DAEMON@mx.example.net\r\n"
    "To: no-reply@backplane.localhost\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n\r\n"
    "Your message could not be delivered.\r\n"
    "--b1\r\n"
    "Content-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example.net\r\n"
    "\r\n"
    "Final-Recipient: rfc822; Gone@Example.org\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "\r\n"
    "Final-Recipient: rfc822; slow@example.org\r\n"
    "Action: delayed\r\n"
    "Status: 4.4.1\r\n"
    "--b1--\r\n"
)
ARF = (
    "From: abuse@isp.example.net\r\n"
    "Subject: complaint\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=feedback-report; boundary="b2"\r\n'
    "\r\n"
    "--b2\r\n"
    "Content-Type: text/plain\r\n\r\n"
    "An abuse report.\r\n"
    "--b2\r\n"
    "Content-Type: message/feedback-report\r\n\r\n"
    "Feedback-Type: abuse\r\n"
    "Version: 1\r\n"
    "Original-Rcpt-To: <angry@example.org>\r\n"
    "--b2--\r\n"
)


def test_bounce_and_complaint_messages_suppress_the_failed_recipients(
    backplane_client: TestClient[Litestar], sink: Sink
) -> None:
    client = backplane_client
    secret = client.post("/api/marketing/webhook-secret").json()
    dsn_url = path_of(secret["url"]) + "/dsn"
    emails = ("gone@example.org", "slow@example.org", "angry@example.org", "ok@example.org")
    contacts_for(client, *emails, tags=["news"])
    right = {"Authorization": f"Bearer {secret['secret']}", "Content-Type": "message/rfc822"}
    assert client.post(dsn_url, content=DSN.encode()).status_code == 401  # the tenant's key
    bounced = client.post(dsn_url, content=DSN.encode(), headers=right)
    assert bounced.status_code == 200, bounced.text
    assert bounced.json() == {"reported": 1, "suppressed": 1}  # the delayed one is no bounce
    complained = client.post(dsn_url, content=ARF.encode(), headers=right)
    assert complained.json() == {"reported": 1, "suppressed": 1}
    junk = client.post(dsn_url, content=b"Subject: hello\r\n\r\nhi\r\n", headers=right)
    assert junk.status_code == 422
    before = len(sink.received)
    campaign = send_campaign(client, make_template(client), make_segment(client))
    assert set(_sent_to(sink, before, 2)) == {"slow@example.org", "ok@example.org"}
    assert stats(client, campaign)["states"] == {"sent": 2, "suppressed": 2}
