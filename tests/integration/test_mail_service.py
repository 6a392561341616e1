"""The mail service through its API and the facade: composed with the ``email`` package,
queued in the caller's transaction, delivered by a task through the chosen transport (the dev
``.eml`` transport by default), sender identities, bad input, tenant isolation, the sending
rate. On SQLite and on real PostgreSQL (row-level security on)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.settings import Settings
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import admin_session, migrate
from tests.identity_helpers import Seeded, seed_tenant
from tests.mail_helpers import eml_files, read_eml
from tests.waiting import wait_for

MESSAGES = "/api/mail/messages"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    env = {"BACKPLANE_MAIL__DEFAULT_FROM": "Acme Platform <no-reply@platform.test>"}
    if request.param == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    return make_settings(data_dir, env)


def send(client: TestClient[Litestar], headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"to": ["ada@example.org"], "subject": "Hello", "text": "Hi Ada", **fields}
    response = client.post(MESSAGES, json=body, headers=headers)
    assert response.status_code == 202, response.text
    sent: dict[str, Any] = response.json()
    assert sent["status"] == "queued"
    return sent


def settled(
    client: TestClient[Litestar], message_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row: dict[str, Any] = client.get(f"{MESSAGES}/{message_id}", headers=headers).json()
        return row if row["status"] not in ("queued", "sending") else None

    return wait_for(done, message=f"message {message_id} to be delivered")


def test_a_message_is_composed_queued_and_written_as_an_eml_file(
    client: TestClient[Litestar], tenant_a: Seeded, data_dir: Path
) -> None:
    text = "Grüße, Ada — ça va?\n"
    first = send(client, tenant_a.headers, subject="Grüße", text=text, html="<p>Grüße</p>")
    second = send(client, tenant_a.headers, to=["bob@example.org", "cy@example.org"])
    assert settled(client, first["id"], tenant_a.headers)["status"] == "sent"
    assert settled(client, second["id"], tenant_a.headers)["status"] == "sent"
    messages = {str(m["Message-ID"]): m for m in map(read_eml, eml_files(data_dir))}
    assert set(messages) == {first["message_id"], second["message_id"]}  # unique ids
    mail = messages[first["message_id"]]
    assert str(mail["From"]) == "Acme Platform <no-reply@platform.test>"
    assert str(mail["To"]) == "ada@example.org"
    assert str(mail["Subject"]) == "Grüße"  # MIME-encoded on the wire, decoded here
    assert mail["Date"] is not None
    assert first["message_id"].endswith("@platform.test>")
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == text
    assert html is not None
    assert "<p>Grüße</p>" in html.get_content()
    assert all(p.read_bytes().isascii() for p in eml_files(data_dir))  # 7-bit on the wire
    assert str(messages[second["message_id"]]["To"]) == "bob@example.org, cy@example.org"


def memory_transport(data_dir: Path, **env: str) -> PluginSet:
    """Migrated SQLite whose mail goes through the kitchen_sink plugin's memory transport."""
    settings = make_settings(data_dir, {"BACKPLANE_MAIL__TRANSPORT": "kitchen_sink_memory", **env})
    plugins = load_plugins(settings)
    migrate(plugins)
    return plugins


def test_hook_register_mail_transports(data_dir: Path) -> None:
    from bp_sample_kitchen_sink.mailbox import DELIVERED

    plugins = memory_transport(data_dir)
    settings, tenant = plugins.settings, seed_tenant(plugins, "acme")
    DELIVERED.clear()
    with TestClient(create_app(settings, plugins=plugins)) as client:
        sent = send(client, tenant.headers, to=["grace@example.org"])
        assert settled(client, sent["id"], tenant.headers)["status"] == "sent"
    [envelope] = DELIVERED
    assert envelope.recipients == ("grace@example.org",)
    assert envelope.message_id == sent["message_id"]
    assert b"Subject: Hello" in envelope.data
    assert eml_files(data_dir) == []  # not the default transport


def test_bad_messages_and_senders_are_refused_with_400(
    client: TestClient[Litestar], tenant_a: Seeded
) -> None:
    headers = tenant_a.headers
    cases = [
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "bad header"),
        ({"to": ["not an address"]}, "not a plain e-mail address"),
        ({"to": ["ada@example.org>, eve@evil.test"]}, "not a plain e-mail address"),
        ({"reply_to": "nobody-at-all"}, "not a plain e-mail address"),
    ]
    for fields, problem in cases:
        body = {"to": ["ada@example.org"], "subject": "s", "text": "t", **fields}
        refused = client.post(MESSAGES, json=body, headers=headers)
        assert refused.status_code == 400, (fields, refused.text)
        assert problem in refused.json()["detail"], refused.text
    too_many = {"to": [f"u{i}@example.org" for i in range(51)], "subject": "s", "text": "t"}
    assert "at most 50 recipients" in client.post(MESSAGES, json=too_many, headers=headers).text
    # A tenant cannot send as a domain the operator has not set up (no DKIM key).
    spoof = client.put("/api/mail/sender", json={"from_address": "ceo@bank.test"}, headers=headers)
    assert spoof.status_code == 400
    assert "backplane mail dkim-key bank.test" in spoof.json()["detail"]
    newline = {"from_address": "news@platform.test", "from_name": "A\nB"}
    assert client.put("/api/mail/sender", json=newline, headers=headers).status_code == 400


def test_sender_identity_sets_from_and_reply_to(
    client: TestClient[Litestar], tenant_a: Seeded, data_dir: Path
) -> None:
    identity = {
        "from_address": "news@platform.test",
        "from_name": "Acme News",
        "reply_to": "help@acme.example.org",
    }
    put = client.put("/api/mail/sender", json=identity, headers=tenant_a.headers)
    assert put.status_code == 200, put.text
    assert put.json() == {**identity, "dkim_signed": False}
    sent = send(client, tenant_a.headers)
    settled(client, sent["id"], tenant_a.headers)
    [mail] = map(read_eml, eml_files(data_dir))
    assert str(mail["From"]) == "Acme News <news@platform.test>"
    assert str(mail["Reply-To"]) == "help@acme.example.org"


def test_tenants_see_only_their_own_messages_and_sender(
    client: TestClient[Litestar], tenant_a: Seeded, tenant_b: Seeded
) -> None:
    sent = send(client, tenant_a.headers)
    assert client.get(f"{MESSAGES}/{sent['id']}", headers=tenant_b.headers).status_code == 404
    assert client.get(MESSAGES, headers=tenant_b.headers).json() == []
    assert [m["id"] for m in client.get(MESSAGES, headers=tenant_a.headers).json()] == [sent["id"]]
    identity = {"from_address": "a@platform.test", "from_name": "A"}
    assert (
        client.put("/api/mail/sender", json=identity, headers=tenant_a.headers).status_code == 200
    )
    other = client.get("/api/mail/sender", headers=tenant_b.headers).json()
    assert other["from_address"] == "no-reply@platform.test"


def test_a_rolled_back_transaction_sends_nothing(app: Litestar, tenant_a: Seeded) -> None:
    from sqlalchemy import func, select

    from backplane.mail.models import MailMessage
    from backplane.tasks.models import OutboxMessage
    from tests.db_helpers import admin_session

    kernel = rails(app).kernel()

    async def fail() -> None:
        async with kernel.tenant(tenant_a.tenant_id) as k:
            await k.mail.send("ada@example.org", "never", "rolled back")
            raise RuntimeError("the action fails")

    async def go() -> tuple[int, int]:
        with pytest.raises(RuntimeError):
            await fail()
        async with kernel.tenant(tenant_a.tenant_id) as k:
            await k.mail.send("ada@example.org", "kept", "committed")
        async with admin_session(rails(app).settings) as session:
            messages = await session.scalar(select(func.count()).select_from(MailMessage))
            tasks = await session.scalar(
                select(func.count()).where(OutboxMessage.actor == "core.deliver_mail")
            )
        return int(messages or 0), int(tasks or 0)

    assert asyncio.run(go()) == (1, 1)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_the_sending_rate_holds_a_tenants_messages_back(data_dir: Path, migrated: Any) -> None:
    from bp_sample_kitchen_sink.mailbox import DELIVERED

    from backplane.app import create_app
    from backplane.loading import load_plugins
    from tests.identity_helpers import seed_tenant

    env = {
        "BACKPLANE_MAIL__TRANSPORT": "kitchen_sink_memory",
        "BACKPLANE_MAIL__MAX_PER_MINUTE": "2",
    }
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    acme, globex = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    DELIVERED.clear()
    with TestClient(create_app(settings, plugins=plugins)) as client:
        ids = [send(client, acme.headers, subject=f"m{i}")["id"] for i in range(3)]
        other = send(client, globex.headers)["id"]

        def rows() -> list[dict[str, Any]] | None:
            found = [client.get(f"{MESSAGES}/{i}", headers=acme.headers).json() for i in ids]
            sent = sum(r["status"] == "sent" for r in found)
            # the third may be caught mid-claim ("sending") before the rate puts it back
            return found if sent == 2 and all(r["status"] != "sending" for r in found) else None

        found = wait_for(rows, message="two of acme's messages to go out")
        assert settled(client, other, globex.headers)["status"] == "sent"  # its own rate
        [held] = [r for r in found if r["status"] != "sent"]
        assert held["status"] == "queued"
        assert held["attempts"] == 0  # held back, not failed
        assert held["next_attempt_at"] is not None
    assert len(DELIVERED) == 3


def test_the_smtp_password_is_a_secret(data_dir: Path) -> None:
    from backplane.mail.smtp import SmtpTransport

    settings = make_settings(
        data_dir,
        {"BACKPLANE_MAIL__SMTP_PASSWORD": "hunter2-smtp", "BACKPLANE_MAIL__SMTP_USERNAME": "bp"},
    )
    assert settings.mail.smtp_password == "hunter2-smtp"
    public = settings.public()
    assert public.mail.smtp_password is None
    assert "hunter2" not in repr(public)
    assert "hunter2" not in repr(settings)
    transport = SmtpTransport(public, settings.mail.smtp_password)
    assert "hunter2" not in repr(transport)


def test_an_unknown_transport_stops_start_up_naming_the_setting(data_dir: Path) -> None:
    from backplane.mail.transports import UnknownTransportError

    settings = make_settings(data_dir, {"BACKPLANE_MAIL__TRANSPORT": "pigeon"})
    with pytest.raises(UnknownTransportError) as info:
        create_app(settings)
    assert str(info.value) == (
        "BACKPLANE_MAIL__TRANSPORT: 'pigeon' is not a registered mail transport "
        "(registered: files, kitchen_sink_memory, smtp)"
    )


def test_retention_deletes_finished_mail_and_dead_links_only(
    client: TestClient[Litestar], tenant_a: Seeded, data_dir: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from backplane.accounts.retention import prune_mail
    from backplane.mail.models import MailMessage

    sent = send(client, tenant_a.headers)
    settled(client, sent["id"], tenant_a.headers)
    invited = client.post(
        "/api/tenant/invites", json={"email": "x@example.org"}, headers=tenant_a.headers
    )
    assert invited.status_code == 201
    wait_for(
        lambda: (
            {m["status"] for m in client.get(MESSAGES, headers=tenant_a.headers).json()} == {"sent"}
        ),
        message="both messages sent",
    )
    settings = rails(client.app).settings

    async def prune(days: int) -> tuple[dict[str, int], list[str]]:
        async with admin_session(settings, "test: retention") as session:
            later = datetime.now(UTC) + timedelta(days=days)
            counts = await prune_mail(session, settings.mail, later)
            left = list(await session.scalars(select(MailMessage.status)))
            await session.commit()
        return counts, left

    assert asyncio.run(prune(1)) == ({"messages": 0, "tokens": 0, "invites": 0}, ["sent", "sent"])
    counts, left = asyncio.run(prune(40))
    assert counts == {"messages": 2, "tokens": 0, "invites": 1}  # the mail and its invitation
    assert left == []


def test_dkim_key_command_refuses_bad_names(data_dir: Path) -> None:
    from tests.cli import run_cli

    env = {"BACKPLANE_DATA_DIR": str(data_dir)}  # refused before any database is needed
    bad = run_cli("mail", "dkim-key", "not a domain", env=env)
    assert bad.returncode == 2
    assert "Invalid value for DOMAIN" in bad.stderr
    assert "is not a domain name" in bad.stderr
    selector = run_cli("mail", "dkim-key", "acme.test", "--selector", "a.b", env=env)
    assert selector.returncode == 2
    assert "--selector" in selector.stderr
