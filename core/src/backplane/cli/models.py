"""``backplane models``: a tenant's own models, for operators (the API is ``/api/models``)."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import click

from backplane.cli import _context
from backplane.cli._model_admin import admin_models as _admin

T = TypeVar("T")


@click.group()
def models() -> None:
    """Tenants' uploaded ONNX models."""


@models.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The tenant that owns the model.")
@click.option("--version", default=None, help="Default: the next whole number.")
@click.option("--description", default="", help="Shown in model listings.")
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=0),
    default=None,
    help="Largest dynamic batch (0 or 1: none); default from inference settings.",
)
@click.option("--max-queue-delay-us", type=click.IntRange(0, 1_000_000), default=None)
def add(
    name: str,
    file: Path,
    slug: str,
    version: str | None,
    description: str,
    max_batch_size: int | None,
    max_queue_delay_us: int | None,
) -> None:
    """Validate FILE and register it as tenant SLUG's model NAME."""
    from backplane.inference.registry import add_model
    from backplane.inference.validation import ModelRejected

    limit = _context.settings().inference.max_upload_bytes
    size = file.stat().st_size
    if size > limit:
        raise click.BadParameter(
            f"{file} is {size} bytes, the upload limit (inference.max_upload_bytes) is {limit}",
            param_hint="FILE",
        )
    steps = ["reading", "validating", "storing", "registering"]
    progressbar: Any = click.progressbar(length=len(steps), label=f"adding {name}", file=sys.stderr)
    with progressbar as bar:

        def progress(step: str) -> None:
            bar.label = f"adding {name}: {step}"
            bar.update(1)

        async def work(session: Any, catalog: Any, tenant_id: Any) -> Any:
            data = file.read_bytes()
            progress("reading")
            row = await add_model(
                session,
                catalog,
                tenant_id=tenant_id,
                name=name,
                data=data,
                version=version,
                description=description,
                max_batch_size=max_batch_size,
                max_queue_delay_us=max_queue_delay_us,
                progress=progress,
            )
            progress("registered")
            return row

        try:
            row = _admin(slug, f"add {slug} {name}", work)
        except ModelRejected as exc:
            raise click.ClickException(f"{file} rejected: {exc.message}") from None
    click.echo(f"{row.name} version {row.version} added for {slug} (sha256 {row.sha256})")


@models.command("list")
@click.option("--tenant", "slug", required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(slug: str, as_json: bool) -> None:
    """The models tenant SLUG can call (shipped and its own)."""
    import msgspec

    from backplane.inference.registry import list_models

    rows = _admin(slug, f"list {slug}", list_models)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(rows), indent=2))
        return
    for row in rows:
        click.echo(f"{row.name:<24} {row.version:<10} {row.source:<9} {row.description}")


@models.command("remove")
@click.argument("name")
@click.option("--tenant", "slug", required=True)
@click.option("--version", default=None, help="Only this version (default: every version).")
def remove(name: str, slug: str, version: str | None) -> None:
    """Delete tenant SLUG's model NAME (or one version of it)."""
    from backplane.inference.registry import delete_model

    count = _admin(slug, f"remove {slug} {name}", partial(delete_model, name=name, version=version))
    click.echo(f"removed {count} version(s) of {name} for {slug}")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@click.option("--tenant", "slug", required=True)
@click.option("--split-version", default=None, help="A second version taking a share of traffic.")
@click.option(
    "--split-percent",
    type=click.IntRange(0, 100),
    default=0,
    help="The share (1-99 %) of requests --split-version answers.",
)
def alias_command(
    name: str, alias: str, version: str, slug: str, split_version: str | None, split_percent: int
) -> None:
    """Point ALIAS of tenant SLUG's model NAME at VERSION (optionally splitting its traffic)."""
    from backplane.inference.aliases import set_alias
    from backplane.inference.rollout import AliasTarget

    target = AliasTarget(version=version, split_version=split_version, split_percent=split_percent)

    async def work(session: Any, catalog: Any, tenant_id: Any) -> Any:
        return await set_alias(session, catalog, tenant_id, name, alias, target)

    row = _admin(slug, f"alias {slug} {name} {alias}", work)
    click.echo(f"{name}@{row.alias} -> {_describe(row)} for {slug}")


@models.command("rollback")
@click.argument("name")
@click.option("--tenant", "slug", required=True)
@click.option("--alias", default="production", show_default=True)
def rollback(name: str, slug: str, alias: str) -> None:
    """Move ALIAS of tenant SLUG's model NAME back to where it pointed before its last change."""
    from backplane.inference.aliases import rollback_alias

    async def work(session: Any, catalog: Any, tenant_id: Any) -> Any:
        return await rollback_alias(session, catalog, tenant_id, name, alias)

    row = _admin(slug, f"rollback {slug} {name} {alias}", work)
    click.echo(f"{name}@{row.alias} rolled back to {_describe(row)} for {slug}")


def _describe(row: Any) -> str:
    if row.split_version is None:
        return f"version {row.version}"
    return (
        f"version {row.version} ({100 - row.split_percent} %) and "
        f"{row.split_version} ({row.split_percent} %)"
    )


@models.command("train")
@click.argument("name")
@click.option("--tenant", "slug", required=True, help="The tenant whose data trains the model.")
@click.option("--trainer", "trainer_name", default=None, help="Needed if NAME has several.")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the run to its end with a progress bar (a worker runs it: `backplane serve` "
    "or `backplane worker`); exit status 1 if it fails.",
)
def train(name: str, slug: str, trainer_name: str | None, wait: bool) -> None:
    """Queue a training run of tenant SLUG's model NAME with its registered trainer."""
    import asyncio
    import time

    from backplane.identity.tenants import IdentityError, tenant_by_slug
    from backplane.inference.registry import RegistryError, check_name
    from backplane.inference.training_runs import STEPS, choose_trainer, get_run, start_run

    async def work(rails: Any) -> Any:
        reason = f"operator: models train {slug} {name}"
        async with rails.database.maintenance(reason) as session, session.begin():
            try:
                tenant = await tenant_by_slug(session, slug)
            except IdentityError as exc:
                raise RegistryError(str(exc), 404) from None
            check_name(rails.models, name, None)
            trainer = choose_trainer(rails.trainers, name, trainer_name)
            row = await start_run(
                session,
                rails.tasks.queue_for(session),
                tenant_id=tenant.id,
                trainer=trainer,
                limit=rails.settings.training.max_concurrent_per_tenant,
                requested_by=None,
            )
            run_id = str(row.id)
        click.echo(f"training run {run_id} queued ({trainer.name})")
        if not wait:
            return None
        deadline = time.monotonic() + rails.settings.training.time_limit_s + 300
        bar: Any = click.progressbar(length=len(STEPS) + 1, label=name, file=sys.stderr)
        with bar:
            while True:
                async with rails.database.maintenance("operator: follow a training run") as s:
                    run = await get_run(s, tenant.id, name, run_id)
                known = STEPS.index(run.progress) if run.progress in STEPS else bar.pos
                bar.label = f"{name}: {run.progress or run.status}"
                bar.update(max(known - bar.pos, 0))
                if run.status in ("succeeded", "failed") or time.monotonic() > deadline:
                    bar.update(bar.length - bar.pos if run.status == "succeeded" else 0)
                    return run
                await asyncio.sleep(1.0)

    run = _context.with_rails(work, RegistryError)
    if run is None:
        return
    if run.status == "succeeded":
        card = run.card or {}
        metric = card.get("metric", "")
        click.echo(
            f"{name} version {run.version} registered for {slug}: {metric} "
            f"{card.get('metrics', {}).get(metric)} (constant baseline "
            f"{card.get('baseline', {}).get(metric)})"
        )
        return
    reason = run.error or f"still {run.status} when the wait ended"
    raise click.ClickException(f"training run {run.id} {run.status}: {reason}")


def _schedule_command() -> None:
    from backplane.cli.model_schedule import schedule

    models.add_command(schedule)


_schedule_command()
