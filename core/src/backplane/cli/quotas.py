"""``backplane quotas``: metered limits per tenant (plans will set these; operators can too)."""

from __future__ import annotations

from typing import Any

import click

from backplane.cli import _context


@click.group()
def quotas() -> None:
    """Per-tenant metered limits."""


@quotas.command("set")
@click.argument("slug")
@click.argument("meter")
@click.argument("limit", type=click.FloatRange(min=0))
@click.option("--soft", is_flag=True, help="Record usage past the limit instead of refusing.")
def set_limit(slug: str, meter: str, limit: float, soft: bool) -> None:
    """Limit METER to LIMIT per billing period for tenant SLUG."""
    from backplane.billing.meters import LIMITED, collect_meters
    from backplane.billing.models import Entitlement
    from backplane.identity.tenants import tenant_by_slug

    meters = collect_meters(_context.plugin_set())
    if meter not in meters:
        raise click.BadParameter(
            f"no meter {meter!r} (known: {', '.join(sorted(meters))})", param_hint="METER"
        )
    if meters[meter].aggregation not in LIMITED:
        raise click.BadParameter(
            "only count, sum and latest (gauge) meters can have limits", param_hint="METER"
        )

    async def work(session: Any) -> None:
        tenant = await tenant_by_slug(session, slug)
        await session.merge(
            Entitlement(tenant_id=tenant.id, meter=meter, limit=limit, hard=not soft)
        )

    _context.admin(f"operator: quotas set {slug} {meter} {limit}", work)
    click.echo(f"{meter} limited to {limit:g} per period for {slug} ({'soft' if soft else 'hard'})")
