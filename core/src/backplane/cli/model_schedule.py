"""``backplane models schedule``: a tenant model's retraining schedule, for operators (the API
is ``/api/models/{name}/training-schedule``)."""

from __future__ import annotations

from typing import Any

import click

from backplane.cli import _context
from backplane.cli._model_admin import admin_models as _admin


@click.command("schedule")
@click.argument("name")
@click.argument("cron", required=False)
@click.option("--tenant", "slug", required=True, help="The tenant whose model is retrained.")
@click.option("--trainer", "trainer_name", default=None, help="Needed if NAME has several.")
@click.option("--off", is_flag=True, help="Remove the schedule.")
def schedule(name: str, cron: str | None, slug: str, trainer_name: str | None, off: bool) -> None:
    """Retrain tenant SLUG's model NAME at the times CRON names (five fields, UTC, e.g.
    "0 3 * * *"); without CRON show the schedule, with --off remove it."""
    from backplane.inference.schedules import (
        delete_schedule,
        get_schedule,
        schedule_out,
        set_schedule,
    )

    if off and cron:
        raise click.UsageError("give CRON or --off, not both")
    plugins = _context.plugin_set()

    async def work(session: Any, _catalog: Any, tenant_id: Any) -> Any:
        if off:
            await delete_schedule(session, tenant_id, name)
            return None
        if cron is None:
            return schedule_out(await get_schedule(session, tenant_id, name))
        from backplane.inference.trainers import collect_trainers

        row = await set_schedule(
            session,
            collect_trainers(plugins),
            tenant_id=tenant_id,
            model=name,
            cron=cron,
            trainer_name=trainer_name,
            min_interval_s=plugins.settings.training.min_schedule_interval_s,
            updated_by=None,
        )
        return schedule_out(row)

    shown = _admin(slug, "schedule", work)
    if shown is None:
        click.echo(f"{name}: no longer retrained on a schedule for {slug}")
        return
    click.echo(
        f"{name} for {slug}: {shown.trainer} at '{shown.cron}' (UTC), next {shown.next_run_at}"
        + (f"; last refused: {shown.last_error}" if shown.last_error else "")
    )
