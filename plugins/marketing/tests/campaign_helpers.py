"""Helpers of the campaign tests: a real SMTP server (aiosmtpd) in the test process that
keeps what it receives, the DKIM record of the sending domain as a resolver would hand it to
dkimpy, and the campaign set-up every test starts from."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import TestClient
from marketing_helpers import BASE, SEGMENTS, make_contact

from backplane.testing import invoke_cli, run_tasks

TEMPLATES = f"{BASE}/templates"
CAMPAIGNS = f"{BASE}/campaigns"
LINK_BASE = "https://mail.acme.test"
SENDER_DOMAIN = "backplane.localhost"
"""The default From's domain (``mail.default_from``), which gets a DKIM key."""
PRICING = "https://shop.example.org/pricing?src=mail&amp;x=1"
PRICING_URL = "https://shop.example.org/pricing?src=mail&x=1"


@dataclass
class Sink:
    port: int
    received: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            raw = list(self.received)
        return [email.message_from_bytes(m, policy=email.policy.default) for m in raw]  # type: ignore[misc]

    def wait_for(self, count: int, timeout: float = 30) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"the SMTP server got {len(self.received)} messages, not {count}")


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            self.sink.received.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[Sink]:
    sink = Sink(port=free_port())
    server = Controller(_Handler(sink), hostname="127.0.0.1", port=sink.port)
    server.start()
    try:
        yield sink
    finally:
        server.stop()


def smtp_environ(sink: Sink) -> dict[str, str]:
    return {
        "BACKPLANE_MAIL__TRANSPORT": "smtp",
        "BACKPLANE_MAIL__SMTP_HOST": "127.0.0.1",
        "BACKPLANE_MAIL__SMTP_PORT": str(sink.port),
        "BACKPLANE_MAIL__SMTP_TLS": "none",
        "BACKPLANE_MAIL__SMTP_TIMEOUT_S": "5",
        "BACKPLANE_MAIL__MAX_PER_MINUTE": "100000",
        "BACKPLANE_MAIL__LINK_BASE_URL": LINK_BASE,
    }


def dkim_record(environ: dict[str, str], domain: str = SENDER_DOMAIN) -> tuple[str, str]:
    """Make (or show) the domain's DKIM key: the record's name and value."""
    shown = invoke_cli("mail", "dkim-key", domain, "--json", environ=environ)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output[shown.output.index("{") :])
    return str(record["name"]).rstrip("."), str(record["value"])


def path_of(url: str) -> str:
    """A tracking URL as the test client requests it (its path and query)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == LINK_BASE, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def make_template(client: TestClient[Litestar], name: str = "news", **fields: Any) -> str:
    body = {
        "name": name,
        "subject": "Hi {{ contact.first_name | default('there') }}",
        "html": (
            "<html><body><p>Hello {{ contact.name | default('friend') }}</p>"
            f'<a href="{PRICING}">Pricing</a>'
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
        ),
        "text": (
            "Hello {{ contact.first_name | default('there') }}\nUnsubscribe: {{ unsubscribe_url }}"
        ),
        **fields,
    }
    made = client.post(TEMPLATES, json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def make_segment(client: TestClient[Litestar], tag: str = "news") -> str:
    made = client.post(SEGMENTS, json={"name": f"tag {tag}", "filter": {"type": "tag", "tag": tag}})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def send_campaign(
    client: TestClient[Litestar], template_id: str, segment_id: str, name: str = "launch"
) -> str:
    made = client.post(
        CAMPAIGNS, json={"name": name, "template_id": template_id, "segment_id": segment_id}
    )
    assert made.status_code == 201, made.text
    campaign_id = str(made.json()["id"])
    sent = client.post(f"{CAMPAIGNS}/{campaign_id}/send", json={})
    assert sent.status_code == 202, sent.text
    run_tasks(client, timeout=60)
    return campaign_id


def stats(client: TestClient[Litestar], campaign_id: str) -> dict[str, Any]:
    found = client.get(f"{CAMPAIGNS}/{campaign_id}/stats")
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


def contacts_for(client: TestClient[Litestar], *emails: str, tags: list[str]) -> dict[str, str]:
    return {e: str(make_contact(client, e, tags=tags)["id"]) for e in emails}
