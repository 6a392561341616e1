"""The ``smtp`` transport: aiosmtplib, with STARTTLS or implicit TLS and authentication.

The SMTP transaction is driven command by command (``MAIL``, ``RCPT``, then ``DATA``) rather
than with ``sendmail`` so that the delivery can record, just before ``DATA``, that the server
may accept the message from now on (see :mod:`backplane.mail.delivery`). Replies are mapped to
outcomes: 5xx is permanent, 4xx and network failures are retried.
"""

from __future__ import annotations

from typing import Any

import aiosmtplib

from backplane.mail.transports import Committing, MailDeliveryError, MailEnvelope

PERMANENT_FROM = 500


def _refusal(exc: aiosmtplib.SMTPResponseException, step: str) -> MailDeliveryError:
    return MailDeliveryError(
        f"{step} refused: {exc.code} {exc.message}"[:1000], permanent=exc.code >= PERMANENT_FROM
    )


class SmtpTransport:
    """Connects per message (a worker's messages are few and spread over time; a pooled
    connection would need its own liveness checks)."""

    def __init__(self, settings: Any, password: str | None) -> None:
        mail = settings.mail
        self.host, self.port, self.mode = mail.smtp_host, mail.smtp_port, mail.smtp_tls
        self.username, self._password = mail.smtp_username, password
        self.timeout = mail.smtp_timeout_s
        self.ca_file = str(mail.smtp_ca_file) if mail.smtp_ca_file else None

    def __repr__(self) -> str:  # the password never appears
        return f"SmtpTransport({self.host}:{self.port}, tls={self.mode}, user={self.username!r})"

    async def deliver(self, envelope: MailEnvelope, committing: Committing) -> None:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.mode == "tls",
            start_tls=self.mode == "starttls",
            cert_bundle=self.ca_file,
        )
        try:
            try:
                await client.connect()
                if self.username:
                    await client.login(self.username, self._password or "")
                await client.mail(envelope.sender)
                for recipient in envelope.recipients:
                    await client.rcpt(recipient)
            except aiosmtplib.SMTPResponseException as exc:
                raise _refusal(exc, "the SMTP transaction") from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                reason = f"SMTP server unavailable: {type(exc).__name__}: {exc}"
                raise MailDeliveryError(reason[:1000]) from None
            await committing()
            try:
                await client.data(envelope.data)
            except aiosmtplib.SMTPResponseException as exc:
                raise _refusal(exc, "the message") from None  # a definite answer: not accepted
        finally:
            await _close(client)


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def open_smtp(settings: Any, password: str | None) -> SmtpTransport:
    return SmtpTransport(settings, password)
