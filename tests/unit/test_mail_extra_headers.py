"""Extra headers of ``kernel.mail.send`` (for bulk mail: RFC 2369/8058 ``List-*``): only the
allow-listed ones, never one the kernel sets (From, Message-ID, DKIM-Signature, ...), one line
of printable ASCII, written as given (a long URL is not turned into an encoded-word)."""

from __future__ import annotations

import pytest

from backplane.mail.compose import MailError, compose
from backplane.settings import MailSettings

SENDER = ("Acme", "news@acme.test")
URL = "https://mail.acme.test/api/marketing/t/" + "0" * 36 + "/u/" + "x" * 32


def _compose(headers: dict[str, str]) -> bytes:
    message = compose(
        MailSettings(), SENDER, None, ["ada@example.org"], "Hi", "text", None, headers
    )
    return message.as_bytes()


def test_list_unsubscribe_headers_are_written_as_given() -> None:
    data = _compose(
        {"List-Unsubscribe": f"<{URL}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    )
    assert f"\r\nList-Unsubscribe: <{URL}>\r\n".encode() in data
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in data
    assert b"=?utf-8?" not in data


@pytest.mark.parametrize(
    "name", ["From", "Message-ID", "DKIM-Signature", "To", "Reply-To", "Sender", "Bcc", "X-Any"]
)
def test_headers_outside_the_allow_list_are_refused(name: str) -> None:
    with pytest.raises(MailError, match="cannot be set"):
        _compose({name: "evil@example.org"})


@pytest.mark.parametrize(
    "value", ["<https://a.test/u>\r\nBcc: evil@example.org", "<https://a.test/ü>", "x" * 950]
)
def test_header_values_must_be_one_short_printable_ascii_line(value: str) -> None:
    with pytest.raises(MailError, match="one line of printable ASCII"):
        _compose({"List-Unsubscribe": value})
