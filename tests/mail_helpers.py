"""Mail test helpers: a real SMTP server (aiosmtpd) in the test process, reading the dev
transport's ``.eml`` files, and driving the mail queue."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.cli import free_port

LINK = re.compile(r"https?://\S+token=[A-Za-z0-9_\-%.~]+")


@dataclass
class Mailbox:
    """What the SMTP server received, and how it answers: ``answers`` (a list of replies to
    ``DATA``, one per message, the last repeated; ``250 OK`` accepts) and ``hold_data`` /
    ``hold_rcpt``, events the handler waits on before answering (a worker can be killed then)."""

    port: int
    received: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=lambda: ["250 OK"])
    hold_data: threading.Event | None = None
    hold_rcpt: threading.Event | None = None
    reached_data: threading.Event = field(default_factory=threading.Event)
    reached_rcpt: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        import asyncio

        self.box.reached_rcpt.set()
        if self.box.hold_rcpt is not None:
            await asyncio.to_thread(self.box.hold_rcpt.wait, 60)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        box = self.box
        with box.lock:
            answer = box.answers.pop(0) if len(box.answers) > 1 else box.answers[0]
            if answer.startswith("250"):
                # Received: whatever happens to the client from now on, the server has it.
                box.received.append(bytes(envelope.original_content or envelope.content))
                box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        box.reached_data.set()
        if box.hold_data is not None:
            await asyncio.to_thread(box.hold_data.wait, 60)
        return answer


@contextmanager
def smtp_server(**controller: Any) -> Iterator[Mailbox]:
    """An aiosmtpd server on a free local port, for the block."""
    box = Mailbox(port=free_port())
    server = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **controller)
    server.start()
    try:
        yield box
    finally:
        for event in (box.hold_data, box.hold_rcpt):
            if event is not None:
                event.set()
        server.stop()


def smtp_env(box: Mailbox, **more: str) -> dict[str, str]:
    return {
        "BACKPLANE_MAIL__TRANSPORT": "smtp",
        "BACKPLANE_MAIL__SMTP_HOST": "127.0.0.1",
        "BACKPLANE_MAIL__SMTP_PORT": str(box.port),
        "BACKPLANE_MAIL__SMTP_TLS": "none",
        "BACKPLANE_MAIL__SMTP_TIMEOUT_S": "5",
        **more,
    }


def eml_files(data_dir: Path) -> list[Path]:
    directory = data_dir / "mail"
    return sorted(directory.glob("*.eml")) if directory.exists() else []


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def mails_to(data_dir: Path, address: str) -> list[EmailMessage]:
    found = [read_eml(p) for p in eml_files(data_dir)]
    return [m for m in found if address in str(m["To"])]


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, f"no link in {body.get_content()!r}"
    return found.group(0)
