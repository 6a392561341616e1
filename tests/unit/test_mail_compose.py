"""The kernel's composer writes messages directly (not through the ``email`` package's
generator): what it writes must parse back, with that package, to the same headers and
contents, stay ASCII with CRLF line ends and lines within RFC 5322's limits, and encode
non-ASCII names, subjects and bodies correctly."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from backplane.mail.compose import MailError, compose_bytes
from backplane.settings import MailSettings

SENDER = ("Acme", "news@acme.test")


def _parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def _lines(text: str) -> list[str]:
    """The text's lines (line ends are the transport's: CRLF on the wire)."""
    return text.replace("\r\n", "\n").rstrip("\n").split("\n")


def _check_wire(data: bytes) -> None:
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 900


@pytest.mark.parametrize(
    ("name", "subject", "text", "html"),
    [
        ("Acme", "Hi Ada", "Hello Ada\n", None),
        ("Zoë's Café, Ltd.", "Grüße, José", "Ça va?\nÜber 😀\n", "<p>Grüße 😀</p>"),
        ('Acme "News", Inc.', "x" * 200, "a" * 500 + "\n\nend  \n\tTab", "<p>" + "b" * 300),
        (
            "Ростелеком",
            "Привет, " + "мир " * 40,
            "Привет мир\n" * 30,
            "<p>日本語のテキスト</p>" * 20,
        ),
        ("", "=?utf-8?q?not_an_encoded_word?=", ".\nFrom here\n", '<a href="x">=3D</a>'),
        ("A", "", "", ""),
        ("Acme News", "Your weekly digest " * 10, "Tab\there\n", None),
        ("Acme", "tab\tin subject " + "ü" * 100, "t", None),
    ],
)
def test_messages_parse_back_to_what_was_asked(
    name: str, subject: str, text: str, html: str | None
) -> None:
    composed = compose_bytes(
        MailSettings(),
        (name, "news@acme.test"),
        "help@acme.test",
        ["ada@example.org", "bob@example.org"],
        subject,
        text,
        html,
        {"List-Unsubscribe": "<https://acme.test/u/abc>", "List-Id": "News <news.acme.test>"},
    )
    _check_wire(composed.data)
    message = _parsed(composed.data)
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (name, "news@acme.test")
    assert [a.addr_spec for a in message["To"].addresses] == ["ada@example.org", "bob@example.org"]
    assert str(message["Reply-To"]) == "help@acme.test"
    assert str(message["Subject"]) == subject
    assert str(message["Message-ID"]) == composed.message_id
    assert message["Date"].datetime is not None
    assert str(message["List-Unsubscribe"]) == "<https://acme.test/u/abc>"
    assert str(message["List-Id"]) == "News <news.acme.test>"
    assert (composed.sender, composed.subject) == ("news@acme.test", subject)
    assert composed.recipients == ["ada@example.org", "bob@example.org"]
    plain = message.get_body(("plain",))
    assert plain is not None
    assert _lines(plain.get_content()) == _lines(text)
    if html is None:
        assert message.get_content_type() == "text/plain"
    else:
        assert message.get_content_type() == "multipart/alternative"
        rich = message.get_body(("html",))
        assert rich is not None
        assert _lines(rich.get_content()) == _lines(html)
        assert len(list(message.iter_parts())) == 2


def test_message_ids_are_unique_and_of_the_senders_domain() -> None:
    ids = {
        compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], "s", "t").message_id
        for _ in range(500)
    }
    assert len(ids) == 500
    assert all(i.startswith("<") and i.endswith("@acme.test>") for i in ids)


def test_ascii_text_in_short_lines_is_sent_as_7bit_and_the_rest_encoded() -> None:
    short = compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], "s", "plain\n").data
    assert b"Content-Transfer-Encoding: 7bit\r\n\r\nplain\r\n" in short
    latin = compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], "s", "café\n").data
    assert b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n" in latin
    cyrillic = compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], "s", "Привет " * 50)
    assert b"Content-Transfer-Encoding: base64" in cyrillic.data
    assert b"Content-Transfer-Encoding: quoted-printable" not in cyrillic.data


def test_many_recipients_are_folded() -> None:
    to = [f"person{n}@example.org" for n in range(40)]
    composed = compose_bytes(MailSettings(), SENDER, None, to, "s", "t")
    _check_wire(composed.data)
    head = composed.data.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert [a.addr_spec for a in _parsed(composed.data)["To"].addresses] == to


@pytest.mark.parametrize(
    "subject", ["Hi\r\nBcc: evil@example.org", "Hi\nBcc: evil@example.org", "Grüß\rX: y"]
)
def test_line_breaks_in_the_subject_are_refused(subject: str) -> None:
    with pytest.raises(MailError, match="bad header"):
        compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], subject, "t")


def test_line_breaks_in_the_display_name_are_refused() -> None:
    with pytest.raises(MailError, match="bad header"):
        compose_bytes(
            MailSettings(), ("Acme\r\nBcc: x@y.test", "a@b.test"), None, ["c@d.test"], "s", "t"
        )


def test_text_that_is_not_unicode_is_refused() -> None:
    with pytest.raises(MailError, match="not valid Unicode"):
        compose_bytes(MailSettings(), SENDER, None, ["a@b.test"], "s", "bad \ud800 half")


def test_limits_are_kept() -> None:
    with pytest.raises(MailError, match="at least one recipient"):
        compose_bytes(MailSettings(), SENDER, None, [], "s", "t")
    with pytest.raises(MailError, match="at most 2 recipients"):
        compose_bytes(
            MailSettings(max_recipients=2), SENDER, None, ["a@b.t", "c@d.t", "e@f.t"], "s", "t"
        )
    with pytest.raises(MailError, match="at most 2048"):
        compose_bytes(
            MailSettings(max_message_bytes=2048), SENDER, None, ["a@b.test"], "s", "x" * 3000
        )
    with pytest.raises(MailError, match="not a plain e-mail address"):
        compose_bytes(MailSettings(), SENDER, None, ["Ada <a@b.test>"], "s", "t")
    with pytest.raises(MailError, match="cannot be set"):
        compose_bytes(
            MailSettings(),
            SENDER,
            None,
            ["a@b.test"],
            "s",
            "t",
            None,
            {"List-Id": "a", "list-id": "b"},
        )


@pytest.mark.parametrize(
    "address",
    ["ada@example.org", "a.b+tag@mail.example.co.uk", "o'hara@x.test", "a@[127.0.0.1]"],
)
def test_plain_addresses_are_accepted(address: str) -> None:
    composed = compose_bytes(MailSettings(), SENDER, None, [address], "s", "t")
    assert composed.recipients == [address]
    assert [a.addr_spec for a in _parsed(composed.data)["To"].addresses] == [address]


@pytest.mark.parametrize(
    "address",
    ["a..b@x.test", ".a@x.test", "a@x", "a@@x.test", "a b@x.test", "a@x..test", "ü@x.test"],
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(MailError, match="not a plain e-mail address"):
        compose_bytes(MailSettings(), SENDER, None, [address], "s", "t")
