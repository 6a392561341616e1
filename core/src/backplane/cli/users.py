"""``backplane users``: operator commands for user accounts."""

from __future__ import annotations

import sys
from typing import Any

import click

from backplane.cli import _context


@click.group()
def users() -> None:
    """Manage user accounts."""


@users.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting.",
)
def set_password(email: str, password_stdin: bool) -> None:
    """Set the password of the user EMAIL (checked against the password policy).

    Ends every session of the user: refresh tokens are revoked, and access tokens issued
    before are refused (by running servers within two seconds)."""
    from sqlalchemy import select

    from backplane.identity.models import User
    from backplane.identity.provision import hasher_for
    from backplane.identity.sessions import end_sessions
    from backplane.identity.tenants import IdentityError, normalise_email

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("no terminal to prompt on: pass --password-stdin")
    hasher = hasher_for(_context.settings())
    try:
        address = normalise_email(email)
    except IdentityError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    problems = hasher.check_policy(password, email=address)
    if problems:
        hasher.close()
        raise click.ClickException("password refused: " + "; ".join(problems))

    async def work(session: Any) -> None:
        user = await session.scalar(select(User).where(User.email == address))
        if user is None:
            raise IdentityError(f"no user with email {address!r}")
        user.password_hash = await hasher.hash(password)
        await end_sessions(session, user.id)

    try:
        _context.admin(f"operator: users set-password {address}", work)
    finally:
        hasher.close()
    click.echo(f"password set for {address}")
