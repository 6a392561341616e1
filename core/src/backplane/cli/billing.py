"""``backplane billing``: operator actions on billing periods."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import click

from backplane.cli import _context

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])\Z")


@click.group()
def billing() -> None:
    """Billing periods and invoices."""


@billing.command("close-period")
@click.option("--tenant", "slug", default=None, help="Only this tenant (default: all).")
@click.option("--period", default=None, help="YYYY-MM (default: the previous month).")
def close_period(slug: str | None, period: str | None) -> None:
    """Close an ended period into finalized invoices (idempotent: a closed tenant is skipped).

    Each tenant is closed in its own transaction; one failing does not stop the others.
    """
    from backplane.billing.invoices import previous_period
    from backplane.billing.usage import period_bounds

    now = datetime.now(UTC)
    if period is None:
        start = previous_period(now)
    else:
        match = PERIOD.match(period)
        if match is None:
            raise click.BadParameter("expected YYYY-MM", param_hint="--period")
        start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    if period_bounds(start)[1] > now:
        raise click.BadParameter(f"{start:%Y-%m} has not ended yet", param_hint="--period")
    closed, failed = _context.with_rails(
        lambda rails: _close(rails, slug, start), click.ClickException
    )
    click.echo(f"{start:%Y-%m}: {closed} invoice(s) finalized, {failed} failure(s)")
    if failed:
        raise SystemExit(1)


async def _close(rails: Any, slug: str | None, start: datetime) -> tuple[int, int]:
    from sqlalchemy import select

    from backplane.billing.invoices import close_tenant_period
    from backplane.identity.models import Tenant

    database, context = rails.database, rails.billing
    async with database.maintenance("operator: billing close-period lists tenants") as session:
        query = select(Tenant.id, Tenant.slug).order_by(Tenant.slug)
        if slug is not None:
            query = query.where(Tenant.slug == slug)
        tenants: list[tuple[uuid.UUID, str]] = [tuple(r) for r in await session.execute(query)]
    if slug is not None and not tenants:
        raise click.ClickException(f"no tenant with slug {slug!r}")
    closed = failed = 0
    bar: Any
    with click.progressbar(
        tenants,
        label="closing",
        hidden=len(tenants) < 20,
        item_show_func=lambda item: item[1] if item else None,
    ) as bar:
        for tenant_id, name in bar:
            try:
                reason = f"operator: billing close-period {name}"
                async with database.maintenance(reason) as session, session.begin():
                    if await close_tenant_period(session, tenant_id, start, context):
                        closed += 1
            except Exception as exc:  # noqa: BLE001 - reported per tenant, others go on
                failed += 1
                click.echo(f"\n{name}: {type(exc).__name__}: {exc}", err=True)
    return closed, failed
