"""Issue 5, acceptance 4 (SSRF): with the production defaults, webhook URLs that are not
https or that resolve to private, loopback, link-local or otherwise non-public addresses are
refused at registration (422 naming the rule), and again at delivery time when a name that
was public at registration resolves to a private address later (DNS rebinding).

Issue 15, item 11: the refusals are no DNS oracle. A literal address in the URL is named (the
caller typed it), but for a host name the answer never says what it resolved to, nor whether
it resolved at all: a name resolving to ``10.x`` and a name that does not resolve get the same
bytes, at registration and in the delivery history.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.billing.webhooks import urls as webhook_urls
from backplane.billing.webhooks.urls import NOT_PUBLIC
from tests.app_helpers import rails
from tests.identity_helpers import Seeded
from tests.integration.test_webhooks import (
    BASE,
    Receiver,
    dispatch,
    running_receiver,
    settled,
)
from tests.waiting import wait_for

PRIVATE_URLS = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://10.0.0.5/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.10/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[2002:7f00:1::1]/hook",
    "https://224.0.0.1/hook",
]
REFUSED_NAME = f"endpoint URL refused: {NOT_PUBLIC}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_addresses_are_refused_at_registration(
    authed: TestClient[Litestar], tenant_a: Seeded, url: str
) -> None:
    answer = authed.post(BASE, json={"url": url}, headers=tenant_a.headers)
    assert answer.status_code == 422, answer.text
    assert "non-public address" in answer.text  # the literal the caller typed is named
    assert "allow_private_addresses" in answer.text
    changed = authed.get(BASE, headers=tenant_a.headers)
    assert changed.json() == []


def test_localhost_is_refused_without_saying_what_it_resolves_to(
    authed: TestClient[Litestar], tenant_a: Seeded
) -> None:
    answer = authed.post(BASE, json={"url": "https://localhost/hook"}, headers=tenant_a.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == REFUSED_NAME
    assert "127.0.0.1" not in answer.text
    assert authed.get(BASE, headers=tenant_a.headers).json() == []


def test_http_is_refused_without_the_development_setting(
    authed: TestClient[Litestar], tenant_a: Seeded
) -> None:
    answer = authed.post(BASE, json={"url": "http://93.184.216.34/hook"}, headers=tenant_a.headers)
    assert answer.status_code == 422, answer.text
    assert "must use https" in answer.text
    assert "allow_http" in answer.text


def test_a_name_resolving_to_a_private_address_is_refused(
    authed: TestClient[Litestar], tenant_a: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def split_horizon(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.1.2.3"]  # one public answer is not enough: all must be

    monkeypatch.setattr(webhook_urls, "resolve", split_horizon)
    answer = authed.post(
        BASE, json={"url": "https://hooks.example.test/x"}, headers=tenant_a.headers
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == REFUSED_NAME
    assert "10.1.2.3" not in answer.text


def test_a_private_name_and_a_missing_name_get_identical_refusals(
    authed: TestClient[Litestar], tenant_a: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which internal names exist, and what they point at, is not learnt from the answers."""

    async def internal_dns(host: str, port: int) -> list[str]:
        if host == "db.internal.test":
            return ["10.20.30.40"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(webhook_urls, "resolve", internal_dns)
    answers = [
        authed.post(BASE, json={"url": f"https://{host}/x"}, headers=tenant_a.headers)
        for host in ("db.internal.test", "nothing.internal.test")
    ]
    assert [a.status_code for a in answers] == [422, 422]
    assert answers[0].content == answers[1].content
    assert answers[0].json()["detail"] == REFUSED_NAME
    # The same for a change of URL.
    created = authed.post(BASE, json={"url": "https://93.184.216.34/x"}, headers=tenant_a.headers)
    assert created.status_code == 201, created.text
    patched = [
        authed.patch(
            f"{BASE}/{created.json()['id']}",
            json={"url": f"https://{host}/x"},
            headers=tenant_a.headers,
        )
        for host in ("db.internal.test", "nothing.internal.test")
    ]
    assert [p.status_code for p in patched] == [422, 422]
    assert patched[0].content == patched[1].content == answers[0].content


def test_patching_to_a_private_address_is_refused(
    authed: TestClient[Litestar], tenant_a: Seeded
) -> None:
    created = authed.post(BASE, json={"url": "https://93.184.216.34/x"}, headers=tenant_a.headers)
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    answer = authed.patch(
        f"{BASE}/{endpoint}", json={"url": "https://169.254.169.254/"}, headers=tenant_a.headers
    )
    assert answer.status_code == 422, answer.text
    assert "non-public address 169.254.169.254" in answer.text
    kept = authed.get(f"{BASE}/{endpoint}", headers=tenant_a.headers).json()
    assert kept["url"] == "https://93.184.216.34/x"


@pytest.mark.parametrize("later", ["loopback", "gone"])
def test_rebinding_to_a_private_address_is_refused_at_delivery(
    app: Litestar,
    authed: TestClient[Litestar],
    tenant_a: Seeded,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    later: str,
) -> None:
    """Public at registration, loopback (or no answer) at delivery: the attempt is refused,
    nothing is sent, and the history says the same in both cases, naming no address."""
    answers = {"rebind.example.test": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        if not answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(webhook_urls, "resolve", resolve)
    # The receiver listens on loopback, on the port the URL names.
    url = f"https://rebind.example.test:{receiver.port}/hook"
    created = authed.post(BASE, json={"url": url}, headers=tenant_a.headers)
    assert created.status_code == 201, created.text
    receiver.secrets["/hook"] = created.json()["secret"]
    answers["rebind.example.test"] = ["127.0.0.1"] if later == "loopback" else []

    sent = authed.post(f"{BASE}/{created.json()['id']}/test", headers=tenant_a.headers)
    assert sent.status_code == 202, sent.text
    [delivery] = settled(
        authed, created.json()["id"], tenant_a.headers, nudge=lambda: _due_now(app)
    )
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 8  # the default webhooks.max_attempts
    assert delivery["last_status_code"] is None
    assert delivery["last_error"] == f"refused: {NOT_PUBLIC}"
    time.sleep(0.2)
    assert receiver.received == []


def test_connection_failures_in_the_history_name_no_address(
    app: Litestar,
    authed: TestClient[Litestar],
    tenant_a: Seeded,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The network library's messages name the address connected to, which is what the
    tenant's host name resolved to; the history shows a fixed phrase instead."""

    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    async def unreachable(self: httpx.AsyncClient, request: httpx.Request, **_: Any) -> Any:
        # asyncio's own wording for a refused connection
        address = f"('{request.url.host}', {request.url.port or 443})"
        raise httpx.ConnectError(f"[Errno 111] Connect call failed {address}", request=request)

    monkeypatch.setattr(webhook_urls, "resolve", resolve)
    monkeypatch.setattr(httpx.AsyncClient, "send", unreachable)
    created = authed.post(
        BASE, json={"url": "https://hooks.example.test/x"}, headers=tenant_a.headers
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    sent = authed.post(f"{BASE}/{endpoint}/test", headers=tenant_a.headers)
    assert sent.status_code == 202, sent.text

    def attempted() -> list[dict[str, Any]]:
        answer = authed.get(f"{BASE}/{endpoint}/deliveries", headers=tenant_a.headers)
        return [d for d in answer.json() if d["attempts"] >= 1]

    [delivery] = wait_for(attempted, message="a delivery attempted")
    assert delivery["last_error"] == "could not connect to the endpoint"
    history = authed.get(f"{BASE}/deliveries/{delivery['id']}", headers=tenant_a.headers)
    assert "93.184.216.34" not in history.text


def _due_now(app: Litestar) -> None:
    """Make the pending retry due (the default backoff is 30 s and more), then dispatch."""
    from sqlalchemy import update

    from backplane.billing.webhooks.models import PENDING, WebhookDelivery
    from tests.db_helpers import admin_session

    runtime = rails(app).tasks

    async def go() -> None:
        async with admin_session(rails(app).settings, "test: make retries due") as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.status == PENDING)
                .values(next_attempt_at=WebhookDelivery.created_at)
            )
            await session.commit()

    runtime.run(go())
    dispatch(app)
