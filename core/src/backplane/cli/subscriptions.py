"""``backplane subscriptions``: which plan a tenant is on (operators may pick any plan)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from backplane.cli import _context


@click.group()
def subscriptions() -> None:
    """Show and change tenants' plans."""


@subscriptions.command("set")
@click.option("--tenant", "slug", required=True, help="Tenant slug.")
@click.option("--plan", "code", required=True, help="Plan code (any plan, not only self-service).")
def set_plan(slug: str, code: str) -> None:
    """Move tenant SLUG to plan CODE now (the period's usage is kept)."""
    from backplane.billing.plans import PlanError, plan_by_code
    from backplane.billing.subscriptions import ensure_subscription, subscribe
    from backplane.identity.tenants import tenant_by_slug

    async def work(session: Any) -> None:
        tenant = await tenant_by_slug(session, slug)
        plan = await plan_by_code(session, code)
        if plan is None:
            raise PlanError(f"no plan {code!r}")
        await ensure_subscription(session, tenant.id, _context.settings())
        await subscribe(session, tenant.id, plan)

    try:
        _context.admin(f"operator: subscriptions set {slug} {code}", work)
    except PlanError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tenant {slug} is on plan {code} from now")


@subscriptions.command()
@click.option("--tenant", "slug", required=True, help="Tenant slug.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(slug: str, as_json: bool) -> None:
    """Show tenant SLUG's plan history (the open segment last)."""
    from sqlalchemy import select

    from backplane.billing.models import utc
    from backplane.billing.plan_models import Plan, Subscription
    from backplane.identity.tenants import tenant_by_slug

    def stamp(moment: datetime | None) -> str | None:
        return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None

    async def work(session: Any) -> list[dict[str, Any]]:
        tenant = await tenant_by_slug(session, slug)
        rows = await session.execute(
            select(Subscription, Plan.code)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(Subscription.tenant_id == tenant.id)
            .order_by(Subscription.started_at)
        )
        return [
            {"plan": code, "started_at": stamp(s.started_at), "ended_at": stamp(s.ended_at)}
            for s, code in rows.tuples()
        ]

    history = _context.admin(f"operator: subscriptions show {slug}", work)
    if not history and not as_json:
        click.echo(f"tenant {slug} has no subscription")
    now = f"now ({datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ})"
    _context.echo_rows(
        history, as_json, lambda r: f"{r['plan']:<24} {r['started_at']} .. {r['ended_at'] or now}"
    )
