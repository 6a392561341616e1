"""Compose the kernel's and the enabled plugins' alembic branches and run alembic commands.

Each plugin owns one branch label (its name, by default) and one version directory; ``upgrade``
targets every head, so enabling a plugin later applies only its branch, and ``purge`` takes one
branch back to base without touching the others. Row-level security is part of the schema a
plugin ships: ``revision`` writes it into new tenant tables' migrations, ``check`` fails on
PostgreSQL when a tenant table lacks it, so forgetting it is never silent.
"""

from __future__ import annotations

import io
import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.rewriter import Rewriter
from alembic.config import Config
from alembic.operations import ops
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from backplane._contract import Migrations
from backplane.db.rls import tenant_scoped_tables
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
    config.attributes["foreign_tables"] = foreign_tables(plugins, list(metadata))
    return config


def foreign_tables(plugins: PluginSet, metadata: list[Any]) -> frozenset[str]:
    """Tables of the target metadata mapped by classes of packages that are neither the
    kernel's nor a loaded plugin's: plugins share one ``MetaData``, so a plugin installed but
    not enabled (or only imported, as tests do) has its tables there, and the database rightly
    lacks them. Left out of ``db check``; tables not mapped by a class are always compared."""
    loaded = {"backplane"} | {
        record.module.partition(".")[0]
        for name, record in plugins.records.items()
        if name in plugins.loaded and record.module
    }
    tables = {table.name for data in metadata for table in data.tables.values()}
    foreign = set()
    for data in metadata:
        for mapper in _mappers_of(data):
            package = mapper.class_.__module__.partition(".")[0]
            for table in mapper.tables:
                if table.name in tables and package not in loaded:
                    foreign.add(table.name)
    return frozenset(foreign)


def _mappers_of(metadata: Any) -> list[Any]:
    """The classes mapped on ``metadata`` through the kernel's declarative base (plugins'
    tables subclass ``backplane.Base``)."""
    from backplane.db.base import Base

    return list(Base.registry.mappers) if metadata is Base.metadata else []


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


def check(plugins: PluginSet, stdout: Any = None) -> str | None:
    """Raise :class:`MigrationError` if the models differ from the migrated database or, on
    PostgreSQL, a tenant-scoped table lacks row-level security; return a note on what could
    not be checked (row-level security on SQLite, which has none)."""
    config = alembic_config(plugins, stdout)
    config.attributes["check_rls"] = True
    problems = []
    try:
        command.check(config)
    except CommandError as exc:
        problems.append(str(exc))
    missing = config.attributes.get("rls_missing", {})
    for table, lacks in (missing or {}).items():
        problems.append(
            f"tenant-scoped table {table} has no row-level security (lacks "
            f"{', '.join(lacks)}): add enable_tenant_rls(op, {table!r}) from backplane to the "
            "upgrade() of a migration, e.g. of a new one from "
            "`backplane db revision --plugin NAME --empty -m MSG`"
        )
    if problems:
        raise MigrationError("db check failed: " + "\n".join(problems))
    if "rls_missing" in config.attributes and missing is None:
        return (
            "row-level security not checked: SQLite has none (the ORM layer alone keeps "
            "tenants apart there); run db check against PostgreSQL to check it"
        )
    return None


def revision(
    plugins: PluginSet, plugin: str, message: str, autogenerate: bool, stdout: Any = None
) -> str:
    """Create revision ``<plugin>_NNNN`` on ``plugin``'s branch (starting the branch if it has
    none yet); new tenant-scoped tables get row-level security in it."""
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
    tenant_tables = {t.name for t in tenant_scoped_tables(config.attributes["target_metadata"])}
    config.attributes["process_revision_directives"] = _rls_rewriter(tenant_tables)
    try:
        result = command.revision(
            config,
            message=message,
            autogenerate=autogenerate,
            rev_id=next_revision_id(script, plugin),
            **start,
        )
    except CommandError as exc:
        raise MigrationError(f"db revision failed: {exc}") from None
    scripts = result if isinstance(result, list) else [result]
    return ", ".join(str(s.path) for s in scripts if s is not None)


def next_revision_id(script: ScriptDirectory, prefix: str) -> str:
    """``<prefix>_NNNN``, one past the highest such id among all branches: ids a reader can
    order, and unique even when a plugin's revisions sit in more than one branch."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)")
    numbers = [
        int(match.group(1))
        for found in script.walk_revisions()
        if (match := pattern.fullmatch(found.revision))
    ]
    return f"{prefix}_{max(numbers, default=0) + 1:04d}"


class EnableTenantRLSOp(ops.MigrateOperation):
    """``enable_tenant_rls(op, table)`` in an autogenerated revision."""

    def __init__(self, table: str) -> None:
        self.table = table

    def reverse(self) -> DisableTenantRLSOp:
        return DisableTenantRLSOp(self.table)


class DisableTenantRLSOp(ops.MigrateOperation):
    """``disable_tenant_rls(op, table)`` in an autogenerated revision."""

    def __init__(self, table: str) -> None:
        self.table = table

    def reverse(self) -> EnableTenantRLSOp:
        return EnableTenantRLSOp(self.table)


RLS_IMPORT = "from backplane import disable_tenant_rls, enable_tenant_rls"
"""Revisions call the public API, like hand-written plugin migrations."""


@renderers.dispatch_for(EnableTenantRLSOp)
def _render_enable(context: AutogenContext, op: EnableTenantRLSOp) -> str:
    context.imports.add(RLS_IMPORT)
    return f"enable_tenant_rls(op, {op.table!r})"


@renderers.dispatch_for(DisableTenantRLSOp)
def _render_disable(context: AutogenContext, op: DisableTenantRLSOp) -> str:
    context.imports.add(RLS_IMPORT)
    return f"disable_tenant_rls(op, {op.table!r})"


def _rls_rewriter(tenant_tables: set[str]) -> Rewriter:
    """Follow each new tenant table's ``create_table`` with ``enable_tenant_rls`` and precede
    its ``drop_table`` in the downgrade with ``disable_tenant_rls``."""
    writer = Rewriter()

    @writer.rewrites(ops.CreateTableOp)
    def enable(_context: Any, _revision: Any, op: ops.CreateTableOp) -> Any:
        return [op, EnableTenantRLSOp(op.table_name)] if op.table_name in tenant_tables else op

    @writer.rewrites(ops.DropTableOp)
    def disable(_context: Any, _revision: Any, op: ops.DropTableOp) -> Any:
        return [DisableTenantRLSOp(op.table_name), op] if op.table_name in tenant_tables else op

    return writer
