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
    data_attempts: int = 0
    """``DATA`` commands answered (accepted or not)."""
    answers: list[str] = field(default_factory=lambda: ["250 OK"])
    drop_after_data: bool = False
    """Close the connection once a message is received, without answering (the client cannot
    know whether the server took it)."""
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
            box.data_attempts += 1
            answer = box.answers.pop(0) if len(box.answers) > 1 else box.answers[0]
            if answer.startswith("250"):
                # Received: whatever happens to the client from now on, the server has it.
                box.received.append(bytes(envelope.original_content or envelope.content))
                box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        box.reached_data.set()
        if box.drop_after_data:
            box.drop_after_data = False  # once
            server.transport.close()
            return "250 OK"  # to a closed connection: never arrives
        if box.hold_data is not None:
            await asyncio.to_thread(box.hold_data.wait, 60)
        return answer


USERNAME, PASSWORD = "backplane", "smtp secret 42"


def authenticator(box: Mailbox) -> Any:
    """Accepts ``USERNAME``/``PASSWORD`` only, recording successful logins."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USERNAME.encode(),
            PASSWORD.encode(),
        )
        if ok:
            box.logins.append(USERNAME)
        return AuthResult(success=ok, handled=False)

    return check


@contextmanager
def smtp_server(**controller: Any) -> Iterator[Mailbox]:
    """An aiosmtpd server on a free local port, for the block; ``controller`` takes aiosmtpd's
    options (``tls_context``, ``ssl_context``, ``require_starttls``, ...) and ``auth=True``
    requires a login (:func:`authenticator`)."""
    box = Mailbox(port=free_port())
    if controller.pop("auth", False):
        controller.update(authenticator=authenticator(box), auth_required=True)
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


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_tls(directory: Path) -> tuple[Any, Path]:
    """A server-side TLS context with a fresh self-signed certificate, and the certificate's
    path (the client's CA file)."""
    import ssl

    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


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
