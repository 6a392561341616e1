"""The ``smtp`` transport: aiosmtplib, with STARTTLS or implicit TLS and authentication.

The SMTP transaction is driven command by command (``MAIL``, ``RCPT``, then ``DATA``) rather
than with ``sendmail`` so that the delivery can record, just before ``DATA``, that the server
may accept the message from now on (see :mod:`backplane.mail.delivery`). Replies are mapped to
outcomes: 5xx is permanent, 4xx and network failures are retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib

from backplane.mail.transports import Committing, MailDeliveryError, MailEnvelope

PERMANENT_FROM = 500


def _refusal(exc: aiosmtplib.SMTPResponseException, step: str) -> MailDeliveryError:
    return MailDeliveryError(
        f"{step} refused: {exc.code} {exc.message}"[:1000], permanent=exc.code >= PERMANENT_FROM
    )


class SmtpTransport:
    """Opens one connection per batch of messages (:meth:`connection`; a delivery task's batch,
    see :mod:`backplane.mail.delivery`) and none between batches, so no pooled connection
    needs liveness checks; :meth:`deliver` alone uses a connection of its own."""

    def __init__(self, settings: Any, password: str | None) -> None:
        mail = settings.mail
        self.host, self.port, self.mode = mail.smtp_host, mail.smtp_port, mail.smtp_tls
        self.username, self._password = mail.smtp_username, password
        self.timeout = mail.smtp_timeout_s
        self.ca_file = str(mail.smtp_ca_file) if mail.smtp_ca_file else None

    def __repr__(self) -> str:  # the password never appears
        return f"SmtpTransport({self.host}:{self.port}, tls={self.mode}, user={self.username!r})"

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[SmtpConnection]:
        """One SMTP connection for several messages in turn (opened at the first), quit at the
        end."""
        connection = SmtpConnection(self)
        try:
            yield connection
        finally:
            await connection.close()

    async def deliver(self, envelope: MailEnvelope, committing: Committing) -> None:
        async with self.connection() as connection:
            await connection.deliver(envelope, committing)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.mode == "tls",
            start_tls=self.mode == "starttls",
            cert_bundle=self.ca_file,
        )
        try:
            await client.connect()
            if self.username:
                await client.login(self.username, self._password or "")
        except BaseException:
            await _close(client)
            raise
        return client


class SmtpConnection:
    """One SMTP connection, one transaction per message. After any failure the connection is
    dropped (its state is unknown) and the next message opens a new one; a reused connection
    the server has closed meanwhile is reopened once before ``MAIL``."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self._client: aiosmtplib.SMTP | None = None

    async def deliver(self, envelope: MailEnvelope, committing: Committing) -> None:
        try:
            await self._deliver(envelope, committing)
        except BaseException:
            await self.close()
            raise

    async def _deliver(self, envelope: MailEnvelope, committing: Committing) -> None:
        try:
            await self._start(envelope)
            for recipient in envelope.recipients:
                await self._connected().rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "the SMTP transaction") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            reason = f"SMTP server unavailable: {type(exc).__name__}: {exc}"
            raise MailDeliveryError(reason[:1000]) from None
        await committing()
        try:
            await self._connected().data(envelope.data)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "the message") from None  # a definite answer: not accepted

    async def _start(self, envelope: MailEnvelope) -> None:
        """``MAIL FROM``, on the open connection if it still answers, else on a new one."""
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.mail(envelope.sender)
                return
            except (aiosmtplib.SMTPServerDisconnected, OSError):
                await self.close()
        self._client = await self._transport._connect()
        await self._client.mail(envelope.sender)

    def _connected(self) -> aiosmtplib.SMTP:
        assert self._client is not None  # set by _start
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close(client)


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def open_smtp(settings: Any, password: str | None) -> SmtpTransport:
    return SmtpTransport(settings, password)
