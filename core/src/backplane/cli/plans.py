"""``backplane plans``: the plan catalogue (operators define plans; tenants choose among them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from backplane.cli import _context


@click.group()
def plans() -> None:
    """Create, list and show billing plans."""


@plans.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def create(file: Path) -> None:
    """Create or replace the plans defined in FILE (.toml or .json; see the README).

    A replaced plan's subscribers get its new limits at once; invoices use the definition in
    force when the period is closed.
    """
    import msgspec

    from backplane.billing.meters import collect_meters
    from backplane.billing.plans import PlanError, parse_plan_file, store_plan
    from backplane.billing.subscriptions import resync_plan_subscribers

    async def work(session: Any) -> list[tuple[str, int]]:
        done = []
        for spec in specs:
            plan = await store_plan(session, spec, meters)
            done.append((plan.code, await resync_plan_subscribers(session, plan.id)))
        return done

    try:
        specs = parse_plan_file(file.name, file.read_bytes())
        meters = collect_meters(_context.plugin_set())
        stored = _context.admin(f"operator: plans create {file.name}", work)
    except (PlanError, msgspec.ValidationError) as exc:
        raise click.ClickException(str(exc)) from None
    for code, tenants in stored:
        click.echo(f"plan {code} stored ({tenants} subscribed tenant(s) updated)")


@plans.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_plans(as_json: bool) -> None:
    """List plans."""
    from sqlalchemy import select

    from backplane.billing.plan_models import Plan

    fields = ("code", "name", "currency", "fee", "self_service", "active")

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.scalars(select(Plan).order_by(Plan.code))
        return [{f: getattr(p, f) for f in fields} for p in rows]

    def line(p: dict[str, Any]) -> str:
        flags = ("self-service " if p["self_service"] else "") + ("" if p["active"] else "archived")
        return f"{p['code']:<24} {p['fee']:>10} {p['currency']}  {p['name']}  {flags}".rstrip()

    _context.echo_rows(_context.admin("operator: plans list", work), as_json, line)


@plans.command()
@click.argument("code")
def show(code: str) -> None:
    """Print plan CODE as JSON (the same shape `plans create` reads)."""
    import msgspec

    from backplane.billing.plans import plan_by_code, plan_spec

    async def work(session: Any) -> bytes:
        plan = await plan_by_code(session, code)
        if plan is None:
            raise click.ClickException(f"no plan {code!r}")
        return msgspec.json.format(msgspec.json.encode(await plan_spec(session, plan)))

    click.echo(_context.admin(f"operator: plans show {code}", work).decode())
