"""Compose the kernel's and the enabled plugins' alembic branches and run alembic commands.

Each plugin owns one branch label (its name, by default) and one version directory; ``upgrade``
targets every head, so enabling a plugin later applies only its branch, and ``purge`` takes one
branch back to base without touching the others.
"""

from __future__ import annotations

import io
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from backplane._contract import Migrations
from backplane.plugins import PluginSet


class MigrationError(RuntimeError):
    """A migration command could not run; the message says why and what to do."""


def registered_migrations(plugins: PluginSet) -> list[tuple[str, Migrations]]:
    """Every ``(plugin, Migrations)`` registered through ``register_migrations``."""

    def make(
        plugin: str, directory: Any = None, *, branch: str | None = None, metadata: Any = None
    ) -> list[Migrations]:
        if isinstance(directory, Migrations):
            return [directory]
        if directory is None:
            raise TypeError(f"plugin {plugin!r}: register_migrations needs a directory")
        return [
            Migrations(directory=Path(str(directory)), branch=branch or plugin, metadata=metadata)
        ]

    registered = plugins.collect("register_migrations", make)
    for plugin, migrations in registered:
        if not migrations.directory.is_dir():
            raise MigrationError(
                f"plugin {plugin!r} registered migrations at {migrations.directory}, "
                "which is not a directory (is it missing from the package data?)"
            )
    return registered


def alembic_config(plugins: PluginSet, stdout: Any = None) -> Config:
    registered = registered_migrations(plugins)
    config = Config(stdout=stdout or io.StringIO())
    config.set_main_option("script_location", str(files("backplane") / "migrations"))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join(str(m.directory) for _, m in registered)
    )
    metadata = dict.fromkeys(m.metadata for _, m in registered if m.metadata is not None)
    config.attributes["backplane_settings"] = plugins.settings
    config.attributes["target_metadata"] = list(metadata)
    config.attributes["branches"] = {m.branch: plugin for plugin, m in registered}
    return config


def branches_of(plugins: PluginSet, plugin: str) -> list[str]:
    return [m.branch for owner, m in registered_migrations(plugins) if owner == plugin]


def _run(action: str, function: Any, *args: Any, **kwargs: Any) -> None:
    try:
        function(*args, **kwargs)
    except CommandError as exc:
        text = str(exc)
        hint = ""
        if "Can't locate revision" in text:
            hint = (
                " — the database holds revisions of a branch whose plugin is not enabled; "
                "enable that plugin (BACKPLANE_PLUGINS) or purge it while it is enabled"
            )
        raise MigrationError(f"db {action} failed: {text}{hint}") from None


def upgrade(plugins: PluginSet, target: str = "heads", stdout: Any = None) -> None:
    _run("upgrade", command.upgrade, alembic_config(plugins, stdout), target)


def downgrade(plugins: PluginSet, target: str, stdout: Any = None) -> None:
    _run("downgrade", command.downgrade, alembic_config(plugins, stdout), target)


def purge_branch(plugins: PluginSet, branch: str, stdout: Any = None) -> None:
    """Downgrade one branch to base, dropping that plugin's tables."""
    _run("purge", command.downgrade, alembic_config(plugins, stdout), f"{branch}@base")


def current(plugins: PluginSet, stdout: Any = None) -> None:
    _run("current", command.current, alembic_config(plugins, stdout), verbose=False)


def history(plugins: PluginSet, stdout: Any = None) -> None:
    _run("history", command.history, alembic_config(plugins, stdout))


def check(plugins: PluginSet, stdout: Any = None) -> None:
    """Raise :class:`MigrationError` if the models differ from the migrated database."""
    try:
        command.check(alembic_config(plugins, stdout))
    except CommandError as exc:
        raise MigrationError(f"db check failed: {exc}") from None


def revision(
    plugins: PluginSet, plugin: str, message: str, autogenerate: bool, stdout: Any = None
) -> str:
    """Create a revision on ``plugin``'s branch (starting the branch if it has none yet)."""
    config = alembic_config(plugins, stdout)
    owned = [m for owner, m in registered_migrations(plugins) if owner == plugin]
    if not owned:
        raise MigrationError(f"plugin {plugin!r} registers no migrations directory")
    branch = owned[0]
    script = ScriptDirectory.from_config(config)
    start: dict[str, Any] = {"head": f"{branch.branch}@head"}
    try:
        script.revision_map.get_revision(branch.branch)
    except Exception:  # noqa: BLE001 - alembic raises several kinds for an unknown label
        start = {
            "head": "base",
            "branch_label": branch.branch,
            "version_path": str(branch.directory),
        }
    try:
        result = command.revision(config, message=message, autogenerate=autogenerate, **start)
    except CommandError as exc:
        raise MigrationError(f"db revision failed: {exc}") from None
    scripts = result if isinstance(result, list) else [result]
    return ", ".join(str(s.path) for s in scripts if s is not None)
