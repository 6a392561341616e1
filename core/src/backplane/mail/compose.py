"""Composing a message with the standard ``email`` package: From and Reply-To from the
tenant's sender identity, a unique ``Message-ID``, a text body and an optional HTML one."""

from __future__ import annotations

import email.policy
import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING

from backplane.settings import MailSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

POLICY = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")
"""CRLF line ends, as sent; non-ASCII bodies quoted-printable or base64, so the stored message
is ASCII, any server takes it without 8BITMIME, and no relay re-encodes it under the DKIM
signature. ``refold_source="none"``: headers set raw (the checked extra headers) are written as
given."""


EXTRA_HEADERS = frozenset(
    {"list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id", "precedence"}
)
"""Headers a caller may add to a message (``kernel.mail.send(..., headers=...)``): the bulk-mail
ones (RFC 2369, RFC 8058, RFC 2919). Never From, Sender, To, Date, Message-ID, DKIM-Signature
or anything else the kernel sets or signs on the tenant's behalf."""


class MailError(ValueError):
    """A message cannot be composed as asked (bad address, too many recipients, too large);
    the text says why and is shown to the caller."""


def check_address(value: str) -> str:
    """A bare ASCII address (``local@domain.tld``), or :class:`MailError`."""
    value = value.strip()
    local, at, domain = value.rpartition("@")
    plain = value.isascii() and not any(c.isspace() or c in '<>,;"' for c in value)
    if not (plain and at and local and "." in domain.strip(".") and len(value) <= 320):
        raise MailError(f"{value!r} is not a plain e-mail address")
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError):
        raise MailError(f"{value!r} is not a plain e-mail address") from None
    return value


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def parse_from(value: str) -> tuple[str, str]:
    """``(display name, address)`` of a From such as ``Acme <no-reply@acme.org>``."""
    name, address = parseaddr(value)
    return name, check_address(address)


def compose(
    config: MailSettings,
    sender: tuple[str, str],
    reply_to: str | None,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The message, or :class:`MailError` (see :func:`compose_with_bytes`)."""
    return compose_with_bytes(config, sender, reply_to, to, subject, text, html, headers)[0]


def compose_with_bytes(
    config: MailSettings,
    sender: tuple[str, str],
    reply_to: str | None,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[EmailMessage, bytes]:
    """The message, or :class:`MailError`. ``sender`` is ``(display name, address)``;
    ``headers`` are extra headers, each named in :data:`EXTRA_HEADERS`. With its bytes:
    serialising is most of composing's cost, and the size check has done it already."""
    if not to:
        raise MailError("a message needs at least one recipient")
    if len(to) > config.max_recipients:
        raise MailError(f"at most {config.max_recipients} recipients per message")
    recipients = [check_address(address) for address in to]
    name, address = sender
    message = EmailMessage(policy=POLICY)
    try:
        message["From"] = Address(display_name=name, addr_spec=address)
        message["To"] = ", ".join(recipients)
        if reply_to:
            message["Reply-To"] = check_address(reply_to)
        message["Subject"] = subject
    except ValueError as exc:  # header injection (a line break in a value) and the like
        raise MailError(f"bad header: {exc}") from None
    for name, value in (headers or {}).items():
        if name.lower() not in EXTRA_HEADERS or name.lower() in message:
            allowed = ", ".join(sorted(EXTRA_HEADERS))
            raise MailError(f"header {name!r} cannot be set; allowed: {allowed}")
        if not value.isascii() or not value.isprintable() or len(name) + len(value) > 900:
            raise MailError(f"header {name} must be one line of printable ASCII, under 900")
        # Raw, never re-encoded: a long URL without spaces cannot be folded, and the default
        # fold would turn it into an RFC 2047 encoded-word no mail client reads as a URL.
        message.set_raw(name, value)
    message["Date"] = formatdate(usegmt=True)
    # Not email.utils.make_msgid: its randomness is the ``random`` module's, which test tools
    # (hypothesis) and applications may seed, and two messages in one centisecond then shared
    # an id. 128 bits from ``secrets`` keep it unique, and short enough never to be folded.
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{domain_of(address)}>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    data = message.as_bytes()
    if len(data) > config.max_message_bytes:
        raise MailError(f"the message is {len(data)} bytes; at most {config.max_message_bytes}")
    return message, data
