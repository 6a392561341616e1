"""``backplane db``: alembic commands over the kernel's and enabled plugins' branches."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import click

from backplane.cli import _context


def _migrations() -> ModuleType:
    """Imported on use: alembic and SQLAlchemy are too heavy for ``backplane --help``."""
    from backplane.db import migrations

    return migrations


def _run(function_name: str, *args: object, **kwargs: object) -> Any:
    migrations = _migrations()
    try:
        return getattr(migrations, function_name)(
            _context.plugin_set(), *args, stdout=sys.stdout, **kwargs
        )
    except migrations.MigrationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def db() -> None:
    """Database migrations."""


@db.command()
@click.option(
    "--target", default="heads", show_default=True, help="Revision or branch@head to upgrade to."
)
def upgrade(target: str) -> None:
    """Apply pending migrations of the kernel and every enabled plugin."""
    _run("upgrade", target)
    click.echo(f"database upgraded to {target}")


@db.command()
@click.argument("target")
def downgrade(target: str) -> None:
    """Revert to TARGET (a revision, -1, branch@base, or base)."""
    _run("downgrade", target)
    click.echo(f"database downgraded to {target}")


@db.command()
def current() -> None:
    """Show the revision each branch is at."""
    _run("current")


@db.command()
def history() -> None:
    """List revisions of all branches."""
    _run("history")


@db.command()
def check() -> None:
    """Fail if the models of enabled plugins differ from the migrated database, or a
    tenant-scoped table lacks row-level security (on PostgreSQL)."""
    note = _run("check")
    if note:
        click.echo(note)
    click.echo("models and migrations agree")


@db.command()
@click.option("--plugin", "plugin", required=True, help="Plugin whose branch gets the revision.")
@click.option("-m", "--message", required=True, help="Revision message.")
@click.option(
    "--autogenerate/--empty",
    default=True,
    show_default=True,
    help="Compare models with the database to fill in the revision.",
)
def revision(plugin: str, message: str, autogenerate: bool) -> None:
    """Create a migration revision on a plugin's branch (for plugin authors)."""
    click.echo(f"created {_run('revision', plugin, message, autogenerate)}")
