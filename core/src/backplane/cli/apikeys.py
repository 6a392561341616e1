"""``backplane apikeys``: create, list and revoke a tenant's API keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from backplane.cli import _context
from backplane.secret_key import secret_key

ROLE = click.Choice(["owner", "admin", "member", "viewer"])


@click.group()
def apikeys() -> None:
    """Manage API keys."""


@apikeys.command()
@click.option("--tenant", "slug", required=True, help="Tenant slug.")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--role", type=ROLE, default="member", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="A scope (repeatable).")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def create(
    slug: str,
    name: str,
    role: str,
    scopes: tuple[str, ...],
    expires_in_days: int | None,
    as_json: bool,
) -> None:
    """Create an API key; the key is printed once and never stored.

    Scopes are permission codes (an unknown one is refused, naming the known ones); a key
    with scopes holds only those of its role's permissions. An operator key has no creator, so
    it keeps its role whoever leaves the tenant."""
    from backplane.identity.apikeys import check_scopes, create_api_key
    from backplane.identity.permissions import permission_codes, role_permissions
    from backplane.identity.tenants import tenant_by_slug

    settings = _context.settings()
    secret = secret_key(settings)
    known = permission_codes(role_permissions(_context.plugin_set()))
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(session: Any) -> dict[str, Any]:
        tenant = await tenant_by_slug(session, slug)
        created = await create_api_key(
            session,
            secret,
            tenant_id=tenant.id,
            name=name,
            role=role,
            scopes=check_scopes(list(scopes), known),
            expires_at=expires,
            max_keys=settings.auth.max_api_keys_per_tenant,
        )
        return {
            "id": created.id,
            "key": created.key,
            "tenant": slug,
            "role": role,
            "scopes": created.scopes,
            "expires_at": expires.isoformat() if expires else None,
        }

    result = _context.admin(f"operator: apikeys create for {slug}", work)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"API key {result['id']} for tenant {slug} (shown once): {result['key']}")


@apikeys.command("list")
@click.option("--tenant", "slug", required=True, help="Tenant slug.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_keys(slug: str, as_json: bool) -> None:
    """List a tenant's API keys (never their secrets)."""
    from sqlalchemy import select

    from backplane.identity.models import ApiKey
    from backplane.identity.tenants import tenant_by_slug

    async def work(session: Any) -> list[dict[str, Any]]:
        tenant = await tenant_by_slug(session, slug)
        keys = await session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.created_at)
        )
        return [
            {
                "id": k.id,
                "name": k.name,
                "role": k.role,
                "revoked": k.revoked_at is not None,
                "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
            }
            for k in keys
        ]

    def line(row: dict[str, Any]) -> str:
        state = "revoked" if row["revoked"] else "active"
        return f"{row['id']}  {state:<8} {row['role']:<7} {row['name']}"

    _context.echo_rows(_context.admin(f"operator: apikeys list for {slug}", work), as_json, line)


@apikeys.command()
@click.argument("key_id")
@click.option("--tenant", "slug", required=True, help="Tenant slug the key belongs to.")
def revoke(key_id: str, slug: str) -> None:
    """Revoke API key KEY_ID (effective everywhere within seconds)."""
    from backplane.audit.record import record as audit
    from backplane.identity.models import ApiKey
    from backplane.identity.tenants import IdentityError, tenant_by_slug

    async def work(session: Any) -> None:
        tenant = await tenant_by_slug(session, slug)
        key = await session.get(ApiKey, key_id)
        if key is None or key.tenant_id != tenant.id:
            raise IdentityError(f"tenant {slug!r} has no API key {key_id!r}")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            await audit(session, "apikey.revoked", tenant_id=tenant.id, target=("api_key", key_id))

    _context.admin(f"operator: apikeys revoke {key_id} of {slug}", work)
    click.echo(f"revoked API key {key_id}")
