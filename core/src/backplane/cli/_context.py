"""Shared helpers for commands: settings and plugins loaded once, errors turned into messages."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from backplane.loading import load_plugins
from backplane.plugins import PluginLoadError, PluginSet
from backplane.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


@functools.cache
def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from None


@functools.cache
def plugin_set() -> PluginSet:
    try:
        return load_plugins(settings())
    except PluginLoadError as exc:
        raise click.ClickException(str(exc)) from None


def plugin_set_or_none() -> PluginSet | None:
    """Plugins for adding their commands; a broken environment must not break ``--help``."""
    try:
        return plugin_set()
    except click.ClickException as exc:
        print(f"warning: plugin commands unavailable: {exc.message}", file=sys.stderr)
        return None


def require_migrated() -> None:
    """Refuse to start a long-running process (``serve``, ``worker``) on a database that lacks
    migrations: it would answer every request and run every task with an error. An unreachable
    database is reported by the command group, like every command's."""
    from backplane.db.engine import Database
    from backplane.health import migration_problem

    async def check() -> str | None:
        database = Database(settings())
        try:
            return await migration_problem(database, plugin_set())
        finally:
            await database.dispose()

    problem = asyncio.run(check())
    if problem is not None:
        raise click.ClickException(problem)


def admin(reason: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on an audited maintenance session.

    Operator commands act across tenants by design; the reason goes to the audit log.
    """
    return operate(reason, lambda session, _kernel: work(session))


def operate(reason: str, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """:func:`admin` for work that also fires hooks: ``work(session, kernel)``, ``kernel`` the
    command's :class:`backplane.Kernel`."""
    from backplane.identity.tenants import IdentityError

    async def in_session(rails: Any) -> T:
        async with rails.database.maintenance(reason) as session, session.begin():
            return await work(session, rails.kernel())

    return with_rails(in_session, IdentityError)


def with_rails(work: Callable[[Any], Awaitable[T]], refused: type[Exception]) -> T:
    """Run ``work(rails)`` on the process's rails, closed when it is done; ``refused`` errors
    are reported as click errors, not tracebacks. What it records in the audit trail is the
    operator's doing (their login name)."""
    from backplane.audit.actor import acting, operator
    from backplane.kernel import Rails

    async def run() -> T:
        rails = Rails.build(settings(), plugin_set())
        try:
            return await work(rails)
        finally:
            await rails.close()

    try:
        with acting(operator()):
            return asyncio.run(run())
    except refused as exc:
        raise click.ClickException(str(exc)) from None


def echo_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[Any], str]) -> None:
    """``rows`` as one JSON array, or a ``line`` each."""
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(line(row))
