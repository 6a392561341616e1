"""``backplane operators``: who runs the deployment (platform operators).

A platform operator holds every ``platform.*`` permission code plugins declare (reviewing
marketplace submissions, say), in whichever tenant they are signed in. The role belongs to the
deployment, not to a tenant, so only someone with the deployment's database grants or revokes
it: there is no HTTP route that could be talked into it. Running servers see a change within
two seconds (the membership cache); the maintenance session logs each command to the
``backplane.audit`` logger, and the row keeps who granted it and when.
"""

from __future__ import annotations

from typing import Any

import click

from backplane.cli import _context


@click.group()
def operators() -> None:
    """Grant, revoke and list platform operators (deployment-level, not tenant roles)."""


def _address(email: str) -> str:
    from backplane.identity.tenants import IdentityError, normalise_email

    try:
        return normalise_email(email)
    except IdentityError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None


@operators.command("grant")
@click.argument("email")
def grant(email: str) -> None:
    """Make the existing user EMAIL a platform operator."""
    from sqlalchemy import select

    from backplane.audit.actor import operator
    from backplane.identity.models import PlatformOperator, User
    from backplane.identity.tenants import IdentityError

    address = _address(email)
    by = operator().id or "unknown operator"

    async def work(session: Any) -> bool:
        user_id = await session.scalar(select(User.id).where(User.email == address))
        if user_id is None:
            raise IdentityError(f"no user with email {address!r}")
        if await session.get(PlatformOperator, user_id) is not None:
            return False
        session.add(PlatformOperator(user_id=user_id, granted_by=by[:200]))
        return True

    added = _context.admin(f"operator: operators grant {address}", work)
    click.echo(f"{address} is a platform operator" + ("" if added else " (already)"))


@operators.command("revoke")
@click.argument("email")
def revoke(email: str) -> None:
    """Take the platform operator role from EMAIL."""
    from sqlalchemy import delete, select

    from backplane.identity.models import PlatformOperator, User
    from backplane.identity.tenants import IdentityError

    address = _address(email)

    async def work(session: Any) -> None:
        user_id = await session.scalar(select(User.id).where(User.email == address))
        if user_id is None:
            raise IdentityError(f"no user with email {address!r}")
        result = await session.execute(
            delete(PlatformOperator).where(PlatformOperator.user_id == user_id)
        )
        if result.rowcount == 0:
            raise IdentityError(f"{address} is not a platform operator")

    _context.admin(f"operator: operators revoke {address}", work)
    click.echo(f"{address} is no longer a platform operator")


@operators.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def list_operators(as_json: bool) -> None:
    """List platform operators: email, granted by, granted at."""
    from sqlalchemy import select

    from backplane.identity.models import PlatformOperator, User

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(User.email, PlatformOperator.granted_by, PlatformOperator.granted_at)
            .join(User, User.id == PlatformOperator.user_id)
            .order_by(User.email)
        )
        return [
            {"email": email, "granted_by": by, "granted_at": at.isoformat()}
            for email, by, at in rows
        ]

    rows = _context.admin("operator: operators list", work)
    _context.echo_rows(
        rows, as_json, lambda r: f"{r['email']}\t{r['granted_by']}\t{r['granted_at']}"
    )
