"""Shared helpers for commands: settings and plugins loaded once, errors turned into messages."""

from __future__ import annotations

import functools
import sys

import click

from backplane.plugins import PluginLoadError, PluginSet, load_plugins
from backplane.settings import Settings, SettingsError, load_settings


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
