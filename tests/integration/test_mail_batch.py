"""Batched delivery through the ``smtp`` transport (issue 23, acceptance 6): one SMTP
connection carries a batch's messages, one SMTP transaction each, with the hand-over recorded
before each ``DATA``; a refusal or a dropped connection costs only that message, and the next
one opens a new connection. Against a real SMTP server (aiosmtpd, in the test process)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from backplane.mail.smtp import SmtpTransport
from backplane.mail.transports import MailDeliveryError, MailEnvelope, opened
from tests.cli import free_port


class Counting:
    """Counts connections (``EHLO``) and keeps what each ``DATA`` received; refuses the
    recipients in ``refuse``; closes the connection after the message numbered ``drop_after``."""

    def __init__(self) -> None:
        self.connections = 0
        self.received: list[str] = []
        self.refuse: set[str] = set()
        self.drop_after: int | None = None
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.extend(envelope.rcpt_tos)
            if self.drop_after is not None and len(self.received) == self.drop_after:
                # Closed once the answer below is on its way: the next MAIL finds it gone.
                asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 OK"


@contextmanager
def server() -> Iterator[tuple[Counting, SmtpTransport]]:
    handler, port = Counting(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    mail = SimpleNamespace(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_username=None,
        smtp_timeout_s=5.0,
        smtp_ca_file=None,
    )
    try:
        yield handler, SmtpTransport(SimpleNamespace(mail=mail), None)
    finally:
        controller.stop()


def envelope(to: str) -> MailEnvelope:
    data = f"From: a@example.org\r\nTo: {to}\r\nSubject: hi\r\n\r\nHello\r\n".encode()
    return MailEnvelope("a@example.org", (to,), data, f"<{to}>")


async def deliver_all(transport: SmtpTransport, addresses: list[str]) -> list[str]:
    """Deliver in turn over one batch's connection; each message's outcome."""
    outcomes = []
    async with opened(transport) as connection:
        for address in addresses:
            committed: list[str] = []

            async def committing(address: str = address, committed: list[str] = committed) -> None:
                committed.append(address)

            try:
                await connection.deliver(envelope(address), committing)
            except MailDeliveryError as exc:
                outcomes.append(f"refused{' permanently' if exc.permanent else ''}")
                continue
            assert committed == [address]  # the hand-over was recorded before DATA
            outcomes.append("sent")
    return outcomes


def test_a_batch_goes_over_one_connection() -> None:
    addresses = [f"u{n}@example.org" for n in range(5)]
    with server() as (handler, transport):
        assert asyncio.run(deliver_all(transport, addresses)) == ["sent"] * 5
    assert handler.received == addresses
    assert handler.connections == 1


def test_a_refused_message_costs_only_itself() -> None:
    addresses = [f"u{n}@example.org" for n in range(4)]
    with server() as (handler, transport):
        handler.refuse = {"u1@example.org"}
        outcomes = asyncio.run(deliver_all(transport, addresses))
    assert outcomes == ["sent", "refused permanently", "sent", "sent"]
    assert handler.received == ["u0@example.org", "u2@example.org", "u3@example.org"]
    assert handler.connections == 2  # the refusal dropped the first connection


@pytest.mark.parametrize("drop_after", [1, 2])
def test_a_connection_the_server_closed_is_reopened(drop_after: int) -> None:
    addresses = [f"u{n}@example.org" for n in range(3)]
    with server() as (handler, transport):
        handler.drop_after = drop_after
        assert asyncio.run(deliver_all(transport, addresses)) == ["sent"] * 3
    assert handler.received == addresses
    assert handler.connections == 2
