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
    """Run ``work(session)`` in one transaction on an audited, tenancy-bypassing session.

    Operator commands act across tenants by design; the reason goes to the audit log.
    """
    from backplane.db.engine import create_engine, create_sessionmaker
    from backplane.db.tenancy import bypass_tenancy
    from backplane.identity.tenants import IdentityError

    async def run() -> T:
        engine = create_engine(settings())
        try:
            async with create_sessionmaker(engine)() as session:
                bypass_tenancy(session, reason)
                async with session.begin():
                    return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from None
