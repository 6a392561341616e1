"""Shared helpers for commands: settings and plugins loaded once, errors turned into messages."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from backplane.plugins import PluginLoadError, PluginSet, load_plugins
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


def admin(reason: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on an audited maintenance session.

    Operator commands act across tenants by design; the reason goes to the audit log.
    """
    from backplane.db.engine import Database
    from backplane.identity.tenants import IdentityError

    async def run() -> T:
        database = Database(settings())
        try:
            async with database.maintenance(reason) as session, session.begin():
                return await work(session)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from None
