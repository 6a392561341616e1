"""``backplane plugins``: what is installed, what loaded, what was skipped and why."""

from __future__ import annotations

import sys

import click

from backplane.cli import _context


@click.group()
def plugins() -> None:
    """Inspect and manage plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_plugins(as_json: bool) -> None:
    """List plugins with version, status, skip reason and implemented hooks."""
    plugin_set = _context.plugin_set()
    records = list(plugin_set.records.values())
    if as_json:
        import msgspec

        sys.stdout.write(msgspec.json.format(msgspec.json.encode(records).decode()) + "\n")
        return
    rows = [("NAME", "VERSION", "STATUS", "HOOKS / REASON")]
    for record in records:
        detail = record.reason if record.reason else ", ".join(record.hooks)
        rows.append((record.name, record.version or "-", record.status.value, detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )


@plugins.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(name: str, yes: bool) -> None:
    """Drop every table of plugin NAME by downgrading its migration branch to base."""
    from backplane.db import migrations
    from backplane.plugins import KERNEL_PLUGIN

    if name == KERNEL_PLUGIN:
        raise click.BadParameter("the kernel cannot be purged", param_hint="NAME")
    plugin_set = _context.plugin_set()
    if name not in plugin_set.loaded:
        record = plugin_set.records.get(name)
        why = f" ({record.reason})" if record and record.reason else ""
        raise click.ClickException(
            f"plugin {name!r} is not loaded{why}; it must be installed and enabled to purge it"
        )
    branches = migrations.branches_of(plugin_set, name)
    if not branches:
        click.echo(f"plugin {name!r} has no migrations; nothing to purge")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("refusing to purge without confirmation: pass --yes")
        click.confirm(
            f"Drop all tables and data of plugin {name!r} (branches {', '.join(branches)})?",
            abort=True,
        )
    try:
        for branch in branches:
            migrations.purge_branch(plugin_set, branch, stdout=sys.stdout)
    except migrations.MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"purged plugin {name!r}: branch(es) {', '.join(branches)} downgraded to base")
