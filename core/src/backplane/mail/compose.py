"""Composing a message: From and Reply-To from the tenant's sender identity, a unique
``Message-ID``, a text body and an optional HTML one, as the bytes that are stored, signed and
sent.

The common case is written directly (ASCII header values that need no folding, ``7bit``,
quoted-printable or base64 bodies, one ``multipart/alternative`` level): the standard ``email``
package's header objects, content manager and generator cost about 4 ms a message, most of a
campaign's CPU. Whatever needs more care goes through that package's policy: display names
(quoted or RFC 2047 encoded-words, computed once per sender), and subjects that are not short
printable ASCII (encoded-words, folding). The output parses back with the ``email`` package to
the same headers and contents (``tests/unit/test_mail_compose.py``).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import functools
import re
import secrets
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import Header
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

MAX_LINE = 78
"""RFC 5322's recommended line length: headers are folded and body lines encoded past it."""
CRLF = b"\r\n"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOMS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})+\Z")
"""``local@domain`` both RFC 5322 dot-atoms: an address the ``email`` package's parser
accepts as it is (anything else is left to that parser)."""


class MailError(ValueError):
    """A message cannot be composed as asked (bad address, too many recipients, too large);
    the text says why and is shown to the caller."""


@dataclass(frozen=True, slots=True)
class Composed:
    """A composed message: what the mail row stores (envelope sender and recipients,
    ``Message-ID``, subject) and its bytes (CRLF line ends, ASCII)."""

    sender: str
    recipients: list[str]
    message_id: str
    subject: str
    data: bytes

    def message(self) -> EmailMessage:
        """The bytes parsed with the ``email`` package (for reading; never re-serialised for
        sending)."""
        parsed = email.message_from_bytes(self.data, policy=POLICY)
        assert isinstance(parsed, EmailMessage)
        return parsed


def check_address(value: str) -> str:
    """A bare ASCII address (``local@domain.tld``), or :class:`MailError`."""
    value = value.strip()
    local, at, domain = value.rpartition("@")
    plain = value.isascii() and not any(c.isspace() or c in '<>,;"' for c in value)
    if not (plain and at and local and "." in domain.strip(".") and len(value) <= 320):
        raise MailError(f"{value!r} is not a plain e-mail address")
    if _DOT_ATOMS.match(value):  # the common case, without the email package's parser
        return value
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError):  # the last one was a 500
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
    """The message parsed back, or :class:`MailError` (see :func:`compose_bytes`)."""
    return compose_bytes(config, sender, reply_to, to, subject, text, html, headers).message()


@functools.lru_cache(maxsize=1024)
def _from_header(name: str, address: str) -> bytes:
    """The folded ``From`` line of a sender, made by the ``email`` package (quoting and
    encoded-words of the display name); once per sender, not per message."""
    try:
        header = POLICY.header_factory("From", Address(display_name=name, addr_spec=address))
    except (ValueError, IndexError) as exc:  # a line break in the name and the like
        raise MailError(f"bad header: {exc}") from None
    if "\r" in name or "\n" in name:
        raise MailError("bad header: a display name cannot contain a line break")
    return POLICY.fold_binary("From", header)


def _subject_header(subject: str) -> bytes:
    """The ``Subject`` line: printable ASCII as given, folded at spaces past
    :data:`MAX_LINE`; anything else as RFC 2047 encoded-words (UTF-8), which keep every
    character, spaces included (the ``email`` policy's refolding loses the space between
    adjacent encoded-words)."""
    if "\r" in subject or "\n" in subject:
        raise MailError("bad header: the subject cannot contain a line break")
    if subject.isascii() and subject.isprintable() and "=?" not in subject:
        line = f"Subject: {subject}"
        if len(line) <= MAX_LINE:
            return line.encode("ascii") + CRLF
        folded = _fold_words(line)
        if max(map(len, folded)) <= 998:
            return "\r\n".join(folded).encode("ascii") + CRLF
    header = Header(subject, "utf-8", maxlinelen=MAX_LINE, header_name="Subject")
    return b"Subject: " + header.encode(linesep="\r\n").encode("ascii") + CRLF


def _fold_words(line: str) -> list[str]:
    """``line`` folded before a space where it passes :data:`MAX_LINE` (a word longer than
    a line stays whole); never at the first space (after the field name)."""
    lines: list[str] = []
    current, *words = line.split(" ")
    current += " " + words.pop(0) if words else ""
    for word in words:
        if len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = " " + word
        else:
            current += " " + word
    lines.append(current)
    return lines


def _list_header(name: str, items: list[str]) -> bytes:
    """``name: a, b, c`` folded before an item that would pass :data:`MAX_LINE` (the items
    are plain addresses: no spaces of their own)."""
    lines: list[str] = []
    line = f"{name}:"
    for index, item in enumerate(items):
        piece = item + ("," if index < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > MAX_LINE and index:
            lines.append(line)
            line = ""
        line += " " + piece
    lines.append(line)
    return "\r\n".join(lines).encode("ascii") + CRLF


def _text_part(subtype: str, text: str) -> bytes:
    """A ``text/*`` part in UTF-8: ``7bit`` when ASCII in short lines, else the shorter of
    quoted-printable and base64 (what the ``email`` package chooses); line ends CRLF."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise MailError(f"the {subtype} part is not valid Unicode text") from None
    lines = raw.splitlines()
    if raw.isascii() and max(map(len, lines), default=0) <= MAX_LINE:
        cte, body = "7bit", CRLF.join(lines) + CRLF
    else:
        normal = b"\n".join(lines) + b"\n"
        quoted = binascii.b2a_qp(normal, istext=True)
        encoded = base64.encodebytes(CRLF.join(lines) + CRLF)
        if len(quoted) > len(encoded):
            cte, body = "base64", encoded.replace(b"\n", CRLF)
        else:
            cte, body = "quoted-printable", quoted.replace(b"\n", CRLF)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}'
    return head.encode("ascii") + CRLF + CRLF + body


def compose_bytes(
    config: MailSettings,
    sender: tuple[str, str],
    reply_to: str | None,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Composed:
    """The message, or :class:`MailError`. ``sender`` is ``(display name, address)``;
    ``headers`` are extra headers, each named in :data:`EXTRA_HEADERS`."""
    if not to:
        raise MailError("a message needs at least one recipient")
    if len(to) > config.max_recipients:
        raise MailError(f"at most {config.max_recipients} recipients per message")
    recipients = [check_address(address) for address in to]
    name, address = sender
    out = [_from_header(name, address), _list_header("To", recipients)]
    if reply_to:
        out.append(f"Reply-To: {check_address(reply_to)}\r\n".encode("ascii"))
    out.append(_subject_header(subject))
    seen: set[str] = set()
    for field, value in (headers or {}).items():
        key = field.lower()
        if key not in EXTRA_HEADERS or key in seen:
            allowed = ", ".join(sorted(EXTRA_HEADERS))
            raise MailError(f"header {field!r} cannot be set; allowed: {allowed}")
        if not value.isascii() or not value.isprintable() or len(field) + len(value) > 900:
            raise MailError(f"header {field} must be one line of printable ASCII, under 900")
        seen.add(key)
        # Raw, never re-encoded: a long URL without spaces cannot be folded, and a fold would
        # turn it into an RFC 2047 encoded-word no mail client reads as a URL.
        out.append(f"{field}: {value}\r\n".encode("ascii"))
    # Not email.utils.make_msgid: its randomness is the ``random`` module's, which test tools
    # (hypothesis) and applications may seed, and two messages in one centisecond then shared
    # an id. 128 bits from ``secrets`` keep it unique, and short enough never to be folded.
    message_id = f"<{secrets.token_hex(16)}@{domain_of(address)}>"
    date = formatdate(usegmt=True)
    out.append(f"Date: {date}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n".encode())
    plain = _text_part("plain", text)
    if html is None:
        out.append(plain)
    else:
        rich = _text_part("html", html)
        boundary = f"=_{secrets.token_hex(16)}"  # "=_" never occurs in quoted-printable
        while f"--{boundary}".encode() in plain + rich:  # pragma: no cover - 2**-128
            boundary = f"=_{secrets.token_hex(16)}"
        mark = f"--{boundary}\r\n".encode()
        out += [
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            mark,
            plain,
            CRLF,
            mark,
            rich,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    data = b"".join(out)
    if len(data) > config.max_message_bytes:
        raise MailError(f"the message is {len(data)} bytes; at most {config.max_message_bytes}")
    return Composed(
        sender=address,
        recipients=recipients,
        message_id=message_id,
        subject=subject[:998],
        data=data,
    )
