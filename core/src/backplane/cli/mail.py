"""``backplane mail``: DKIM keys of sending domains, the mail queue, and sending again."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

from backplane.cli import _context


@click.group()
def mail() -> None:
    """Outgoing mail: DKIM keys, the queue, messages to send again."""


@mail.command("dkim-key")
@click.argument("domain")
@click.option(
    "--selector", default=None, help="Selector of a new key (default: mail.dkim_selector)."
)
@click.option("--json", "as_json", is_flag=True)
def dkim_key(domain: str, selector: str | None, as_json: bool) -> None:
    """Generate DOMAIN's DKIM key (once; later calls show it) and print the DNS TXT record to
    publish. Mail whose From is at DOMAIN is signed with it from then on."""
    from backplane.mail.dkim import check_domain, dns_record, get_or_create_key
    from backplane.secret_key import secret_key

    try:
        domain = check_domain(domain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DOMAIN") from None
    settings = _context.settings()
    chosen = selector or settings.mail.dkim_selector
    if not chosen.replace("-", "").isalnum() or not chosen.isascii() or len(chosen) > 63:
        raise click.BadParameter("letters, digits and hyphens only", param_hint="--selector")

    async def work(session: Any) -> tuple[str, str, str, bool]:
        key, created = await get_or_create_key(
            session, domain, chosen.lower(), secret_key(settings)
        )
        name, value = dns_record(key)
        return key.selector, name, value, created

    used, name, value, created = _context.admin(f"operator: mail dkim-key {domain}", work)
    if as_json:
        record = {"domain": domain, "selector": used, "name": name, "type": "TXT", "value": value}
        click.echo(json.dumps({**record, "created": created}))
        return
    if not created and selector is not None and selector != used:
        click.echo(f"{domain} already has a key (selector {used}); it is shown unchanged", err=True)
    click.echo(f"{'Generated' if created else 'Existing'} DKIM key of {domain}; publish:", err=True)
    # A TXT character-string holds at most 255 bytes: a 2048-bit key's record is split into
    # several, which resolvers join (RFC 7208 3.3, RFC 6376 3.6.2.2).
    chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    click.echo(f"{name}. IN TXT {chunks}")


@mail.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Counts of messages per state (queued, sending, sent, failed, unconfirmed)."""
    from sqlalchemy import func, select

    from backplane.mail.models import MailMessage

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(MailMessage.status, func.count()).group_by(MailMessage.status)
        )
        return [{"status": s, "count": c} for s, c in sorted(rows.tuples())]

    rows = _context.admin("operator: mail status", work)
    if not rows and not as_json:
        click.echo("no messages")
    _context.echo_rows(rows, as_json, lambda r: f"{r['status']:<12} {r['count']}")


@mail.command()
def flush() -> None:
    """Queue every due message now (retries, lapsed attempts) instead of at the next minute."""
    from backplane.mail.delivery import dispatch_due

    async def work(rails: Any) -> int:
        session = rails.database.maintenance("operator: mail flush")
        async with session, session.begin():
            return await dispatch_due(session, rails.tasks.queue_for(session), rails.settings.mail)

    count = _context.with_rails(work, LookupError)
    click.echo(f"{count} message(s) queued for delivery")


@mail.command()
@click.argument("message_id")
def resend(message_id: str) -> None:
    """Send MESSAGE_ID again: a failed message, or an unconfirmed one (which the server may
    already have accepted: check with the recipient first)."""
    from backplane.identity.tenants import IdentityError
    from backplane.mail.models import FAILED, QUEUED, UNCONFIRMED, MailMessage
    from backplane.mail.service import DELIVER_TASK

    try:
        key = uuid.UUID(message_id)
    except ValueError:
        raise click.BadParameter("not a message id", param_hint="MESSAGE_ID") from None

    async def work(session: Any, kernel: Any) -> None:
        from datetime import UTC, datetime

        from backplane.kernel import internals

        row = await session.get(MailMessage, key)
        if row is None:
            raise IdentityError(f"no message {message_id}")
        if row.status not in (FAILED, UNCONFIRMED):
            raise IdentityError(f"message {message_id} is {row.status}, not failed or unconfirmed")
        row.status, row.attempts, row.next_attempt_at = QUEUED, 0, datetime.now(UTC)
        internals(kernel).tasks.queue_for(session).enqueue_for(
            row.tenant_id, DELIVER_TASK, message_id
        )

    _context.operate(f"operator: mail resend {message_id}", work)
    click.echo(f"message {message_id} queued again")
