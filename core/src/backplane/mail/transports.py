"""Transports (``register_mail_transports``), the envelope they receive, and the kernel's
development transport, which writes ``.eml`` files under ``<data dir>/mail``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from backplane._contract import MailTransport
from backplane.plugins import PluginSet
from backplane.settings import Settings

Committing = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class MailEnvelope:
    """One message as a transport hands it on: envelope sender, recipients, and the exact bytes
    (CRLF line ends, DKIM-signed when the From domain has a key)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str


class MailDeliveryError(Exception):
    """The receiver refused the message (or could not be reached). ``permanent``: a retry
    cannot cure it (a rejected recipient, a 5xx answer); the message fails at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Transport(Protocol):
    """What ``MailTransport.open`` returns (see :class:`backplane.MailTransport`)."""

    async def deliver(self, envelope: MailEnvelope, committing: Committing) -> None: ...


class UnknownTransportError(LookupError):
    """``mail.transport`` names no transport registered through ``register_mail_transports``."""


def _transport_items(plugin: str, *transports: Any) -> list[MailTransport]:
    for transport in transports:
        if not isinstance(transport, MailTransport):
            raise TypeError(f"register_mail_transports expects MailTransport, got {transport!r}")
    return list(transports)


def collect_transports(plugins: PluginSet) -> dict[str, MailTransport]:
    """Every registered transport by name (a later plugin's replaces an earlier one)."""
    return {t.name: t for _, t in plugins.collect("register_mail_transports", _transport_items)}


def check_transport(found: dict[str, MailTransport], settings: Settings) -> MailTransport:
    """The transport ``mail.transport`` names, or :class:`UnknownTransportError` naming the
    setting and what is registered."""
    chosen = found.get(settings.mail.transport)
    if chosen is None:
        where = settings.sources.get("mail.transport", "BACKPLANE_MAIL__TRANSPORT")
        raise UnknownTransportError(
            f"{where}: {settings.mail.transport!r} is not a registered mail transport "
            f"(registered: {', '.join(sorted(found)) or 'none'})"
        )
    return chosen


def open_transport(found: dict[str, MailTransport], settings: Settings) -> Transport:
    """The transport ``mail.transport`` names, opened (once per process)."""
    chosen = check_transport(found, settings)
    transport: Transport = chosen.open(settings.public(), settings.mail.smtp_password)
    return transport


class FileTransport:
    """Development: each message becomes ``<data dir>/mail/<time>-<id>.eml``, so ``make run``
    needs no mail server and tests read what was sent. Written to a temporary file and renamed
    into place, so a reader never sees half a message; the rename is the hand-over."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"FileTransport({str(self.directory)!r})"

    async def deliver(self, envelope: MailEnvelope, committing: Committing) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        token = envelope.message_id.strip("<>").split("@", 1)[0]
        target = self.directory / f"{stamp}-{token}.eml"
        temporary = await asyncio.to_thread(self._write, envelope.data)
        await committing()
        await asyncio.to_thread(os.replace, temporary, target)

    def _write(self, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return temporary


def open_files(settings: Any, password: str | None) -> FileTransport:
    """The ``files`` transport of the kernel's settings (``password`` is not used)."""
    return FileTransport(Path(settings.data_dir) / "mail")


@contextlib.asynccontextmanager
async def opened(transport: Transport) -> AsyncIterator[Transport]:
    """The transport for a batch of messages: one connection when it offers ``connection()``
    (an async context manager yielding something with the same ``deliver``, as
    :class:`backplane.mail.smtp.SmtpTransport` does), else the transport itself."""
    connection = getattr(transport, "connection", None)
    if connection is None:
        yield transport
        return
    async with connection() as connected:
        yield connected
