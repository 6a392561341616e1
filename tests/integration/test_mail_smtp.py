"""Issue 19, acceptance 2 (in process): mail delivered to a real SMTP server (aiosmtpd, in the
test process) verifies with dkimpy against the DNS record ``backplane mail dkim-key`` prints;
STARTTLS and implicit TLS with authentication; a refusing or unreachable server is retried
with backoff and the message then fails with the reason. SQLite and real PostgreSQL.

The worker kill -9 half of the acceptance line is in ``test_mail_crash.py``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.mail.delivery import dispatch_due
from tests.app_helpers import rails
from tests.cli import free_port, run_cli
from tests.conftest import make_settings
from tests.db_helpers import admin_session, migrate
from tests.identity_helpers import Seeded, seed_tenant
from tests.mail_helpers import PASSWORD, USERNAME, Mailbox, server_tls, smtp_env, smtp_server
from tests.waiting import wait_for

MESSAGES = "/api/mail/messages"
TXT_LINE = re.compile(r'^(?P<name>\S+)\. IN TXT (?P<strings>("[^"]{1,255}" ?)+)$')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    if request.param == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    return env


class Running:
    """An app (with its embedded worker) whose mail goes to an SMTP server."""

    def __init__(self, client: TestClient[Litestar], tenant: Seeded, env: dict[str, str]) -> None:
        self.client, self.tenant, self.env = client, tenant, env

    def send(self, **fields: Any) -> str:
        body = {"to": ["ada@example.org"], "subject": "Hello", "text": "Hi Ada", **fields}
        response = self.client.post(MESSAGES, json=body, headers=self.tenant.headers)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def message(self, message_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.get(
            f"{MESSAGES}/{message_id}", headers=self.tenant.headers
        ).json()
        return found

    def dispatch(self) -> int:
        """One run of the periodic dispatcher (the scheduler runs it once a minute)."""
        app = self.client.app
        runtime, settings = rails(app).tasks, rails(app).settings

        async def go() -> int:
            async with admin_session(settings, "test: dispatch due mail") as session:
                count = await dispatch_due(session, runtime.queue_for(session), settings.mail)
                await session.commit()
            return count

        return runtime.run(go())

    def settled(self, message_id: str, *, dispatching: bool = False) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            row = self.message(message_id)
            if row["status"] not in ("queued", "sending"):
                return row
            if dispatching and row["status"] == "queued":
                self.dispatch()
            return None

        return wait_for(done, message=f"message {message_id} to settle", timeout=30)


@pytest.fixture
def running(db_env: dict[str, str], data_dir: Path) -> Callable[..., Any]:
    """``running(box, **env)``: a context manager giving a :class:`Running` app."""
    from contextlib import contextmanager

    @contextmanager
    def start(box: Mailbox | None, **env: str) -> Any:
        full = {**db_env, **(smtp_env(box) if box else {}), **env}
        settings = make_settings(data_dir, full)
        plugins = load_plugins(settings)
        migrate(plugins)
        tenant = seed_tenant(plugins, "acme")
        with TestClient(create_app(settings, plugins=plugins)) as client:
            yield Running(client, tenant, full)

    return start


def test_delivered_mail_verifies_with_dkim_against_the_published_key(
    running: Callable[..., Any],
) -> None:
    with smtp_server() as box, running(box) as app:
        printed = run_cli("mail", "dkim-key", "acme.test", env=app.env)
        assert printed.returncode == 0, printed.stderr
        match = TXT_LINE.match(printed.stdout.strip())
        assert match, printed.stdout
        name = match["name"]
        strings = re.findall(r'"([^"]*)"', match["strings"])
        assert len(strings) == 2  # a 2048-bit key's record needs two character-strings
        value = "".join(strings)  # what a resolver hands dkimpy
        listed = run_cli("mail", "dkim-key", "acme.test", "--json", env=app.env)
        assert json.loads(listed.stdout)["value"] == value
        assert name == "backplane._domainkey.acme.test"
        again = run_cli("mail", "dkim-key", "acme.test", env=app.env)  # shown, not replaced
        assert again.stdout == printed.stdout
        assert "Existing DKIM key" in again.stderr

        sender = {"from_address": "news@acme.test", "from_name": "Acme", "reply_to": "a@acme.test"}
        put = app.client.put("/api/mail/sender", json=sender, headers=app.tenant.headers)
        assert put.status_code == 200, put.text
        assert put.json()["dkim_signed"] is True
        message_id = app.send(to=["ada@example.org", "bob@example.org"], subject="Signed")
        assert app.settled(message_id)["status"] == "sent"

    [data] = box.received
    assert box.envelopes == [("news@acme.test", ["ada@example.org", "bob@example.org"])]
    assert data.startswith(b"DKIM-Signature:")
    lookups: list[bytes] = []

    def published(qname: bytes, timeout: int = 5) -> bytes | None:
        lookups.append(qname)
        return value.encode() if qname.decode().rstrip(".") == name else None

    assert dkim.verify(data, dnsfunc=published)
    assert lookups == [b"backplane._domainkey.acme.test."]
    tampered = data.replace(b"Subject: Signed", b"Subject: Forged")
    assert not dkim.verify(tampered, dnsfunc=published)  # the check can fail
    signature = data.split(b"\r\n\r\n", 1)[0].decode()
    for header in ("from", "to", "subject", "date", "message-id", "reply-to"):
        assert re.search(rf"h=[^;]*\b{header}\b", signature.replace("\r\n", "").lower())


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_and_authentication(running: Callable[..., Any], tmp_path: Path, mode: str) -> None:
    context, ca_file = server_tls(tmp_path)
    tls: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if mode == "starttls"
        # aiosmtpd does not count implicit TLS as TLS for AUTH: it would not offer it.
        else {"ssl_context": context, "auth_require_tls": False}
    )
    env = {
        "BACKPLANE_MAIL__SMTP_TLS": mode,
        "BACKPLANE_MAIL__SMTP_CA_FILE": str(ca_file),
        "BACKPLANE_MAIL__SMTP_USERNAME": USERNAME,
        "BACKPLANE_MAIL__SMTP_PASSWORD": PASSWORD,
    }
    with smtp_server(auth=True, **tls) as box, running(box, **env) as app:
        message_id = app.send()
        assert app.settled(message_id)["status"] == "sent"
    assert box.logins == [USERNAME]
    assert len(box.received) == 1


def test_a_wrong_password_fails_the_message_at_once(
    running: Callable[..., Any], tmp_path: Path
) -> None:
    context, ca_file = server_tls(tmp_path)
    env = {
        "BACKPLANE_MAIL__SMTP_TLS": "starttls",
        "BACKPLANE_MAIL__SMTP_CA_FILE": str(ca_file),
        "BACKPLANE_MAIL__SMTP_USERNAME": USERNAME,
        "BACKPLANE_MAIL__SMTP_PASSWORD": "wrong",
    }
    with smtp_server(auth=True, tls_context=context) as box, running(box, **env) as app:
        row = app.settled(app.send())
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["last_error"].startswith("the SMTP transaction refused: 535")
    assert "wrong" not in row["last_error"]
    assert box.received == []


RETRYING = {"BACKPLANE_MAIL__BACKOFF_S": "0", "BACKPLANE_MAIL__MAX_ATTEMPTS": "3"}


def test_a_refusing_server_is_retried_then_the_message_fails(running: Callable[..., Any]) -> None:
    with smtp_server() as box, running(box, **RETRYING) as app:
        box.answers = ["451 4.3.0 try again later"]
        row = app.settled(app.send(), dispatching=True)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert row["last_error"] == "the message refused: 451 4.3.0 try again later"
    assert box.data_attempts == 3
    assert box.received == []


def test_a_permanent_refusal_is_not_retried(running: Callable[..., Any]) -> None:
    with smtp_server() as box, running(box, **RETRYING) as app:
        box.answers = ["550 5.7.1 no thanks"]
        row = app.settled(app.send(), dispatching=True)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["last_error"] == "the message refused: 550 5.7.1 no thanks"


def test_a_transient_refusal_is_retried_until_accepted(running: Callable[..., Any]) -> None:
    with smtp_server() as box, running(box, **RETRYING) as app:
        box.answers = ["421 4.7.0 busy", "250 OK"]
        row = app.settled(app.send(), dispatching=True)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)
    assert len(box.received) == 1


def test_an_unreachable_server_is_retried_then_the_message_fails(
    running: Callable[..., Any],
) -> None:
    nothing = Mailbox(port=free_port())  # nobody listens there
    with running(nothing, **RETRYING) as app:
        row = app.settled(app.send(), dispatching=True)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert row["last_error"].startswith("SMTP server unavailable:")


def test_a_connection_lost_during_the_hand_over_is_not_retried_but_can_be_resent(
    running: Callable[..., Any],
) -> None:
    with smtp_server() as box, running(box, **RETRYING) as app:
        box.drop_after_data = True
        message_id = app.send()
        row = app.settled(message_id, dispatching=True)
        assert row["status"] == "unconfirmed"
        assert row["attempts"] == 1
        assert "while handing it over" in row["last_error"]
        assert "not sent again automatically" in row["last_error"]
        assert app.dispatch() == 0  # not due: nothing retries it by itself
        assert len(box.received) == 1

        resent = run_cli("mail", "resend", message_id, env=app.env)  # the operator's decision
        assert resent.returncode == 0, resent.stderr
        assert app.settled(message_id, dispatching=True)["status"] == "sent"
        again = run_cli("mail", "resend", message_id, env=app.env)
        assert again.returncode == 1
        assert "is sent, not failed or unconfirmed" in again.stderr
    assert len(box.received) == 2


def test_backoff_doubles_up_to_its_cap() -> None:
    from backplane.mail.delivery import backoff
    from backplane.settings import MailSettings

    config = MailSettings(backoff_s=60, max_backoff_s=600)
    assert [backoff(config, n).total_seconds() for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
