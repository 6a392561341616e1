"""Shared helpers for commands: settings and plugins loaded once, errors turned into messages."""

from __future__ import annotations

import asyncio
import functools
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


def admin(reason: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction on an audited maintenance session.

    Operator commands act across tenants by design; the reason goes to the audit log.
    """
    return operate(reason, lambda session, _kernel: work(session))


def operate(reason: str, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """:func:`admin` for work that also fires hooks: ``work(session, kernel)``, ``kernel`` the
    command's :class:`backplane.Kernel` (the process's rails, closed when the work is done)."""
    from backplane.identity.tenants import IdentityError
    from backplane.kernel import Rails

    async def run() -> T:
        rails = Rails.build(settings(), plugin_set())
        try:
            async with rails.database.maintenance(reason) as session, session.begin():
                return await work(session, rails.kernel())
        finally:
            await rails.close()

    try:
        return asyncio.run(run())
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from None
