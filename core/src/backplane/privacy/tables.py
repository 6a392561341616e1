"""Which tables hold a tenant's rows, and whose they are: from the registered metadata.

A tenant's rows are found the same way for every plugin, whatever its hooks do: every table of
the metadata that plugins register with their migrations (``register_migrations(...,
metadata=...)``) that has a ``tenant_id`` column, or a foreign key to ``backplane_tenants``.
Tenant deletion deletes from each of them, children before parents (the order of their foreign
keys), so that no plugin can forget one; the export checks its per-table counts against them.

:func:`coverage_problems` is the rule the tests hold every plugin to: each table mapped by a
:class:`~backplane.db.tenancy.TenantScoped` class belongs to a plugin implementing
``export_tenant_data`` or ``erase_subject``, and references its tenant with a cascading foreign
key (so a row written by a request in flight while its tenant is deleted is refused or deleted
by the database itself, see :mod:`backplane.privacy.tenants`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Table, delete, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.schema import sort_tables

from backplane.plugins import KERNEL_PLUGIN, PluginSet

TENANTS_TABLE = "backplane_tenants"
EXPORT_HOOK, ERASE_HOOK = "export_tenant_data", "erase_subject"
HOOKS = (EXPORT_HOOK, ERASE_HOOK)


def registered_metadata(plugins: PluginSet) -> list[Any]:
    """The distinct ``MetaData`` objects plugins registered with their migrations."""
    from backplane.db.migrations import registered_migrations

    found = [m.metadata for _, m in registered_migrations(plugins) if m.metadata is not None]
    return list(dict.fromkeys(found))


def tenant_columns(table: Table) -> list[Column[Any]]:
    """The columns of ``table`` that name a tenant: ``tenant_id`` and foreign keys to it."""
    columns = [c for c in table.c if c.key == "tenant_id"]
    for fk in table.foreign_keys:
        if fk.target_fullname == f"{TENANTS_TABLE}.id" and fk.parent not in columns:
            columns.append(fk.parent)
    return columns


def tenant_tables(metadatas: Iterable[Any]) -> list[Table]:
    """Every table with a :func:`tenant_columns` column (not the tenants table), children
    before the tables their foreign keys point to (the order rows can be deleted in)."""
    tables = {t.name: t for m in metadatas for t in m.tables.values()}
    wanted = [t for t in tables.values() if t.name != TENANTS_TABLE and tenant_columns(t)]
    return list(reversed(sort_tables(wanted)))


def _where(table: Table, tenant_id: uuid.UUID) -> Any:
    return or_(*(c == tenant_id for c in tenant_columns(table)))


async def existing(session: AsyncSession, tables: list[Table]) -> list[Table]:
    """Those of ``tables`` that exist in the database (a plugin may not be migrated yet)."""
    connection = await session.connection()
    names = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    return [t for t in tables if t.name in names]


async def count_rows(
    session: AsyncSession, tables: list[Table], tenant_id: uuid.UUID
) -> dict[str, int]:
    """How many rows of the tenant each table holds (those with a ``tenant_id`` column)."""
    counts = {}
    for table in tables:
        query = select(func.count()).select_from(table).where(_where(table, tenant_id))
        counts[table.name] = int(await session.scalar(query) or 0)
    return counts


async def delete_rows(
    session: AsyncSession, tables: list[Table], tenant_id: uuid.UUID
) -> dict[str, int]:
    """Delete the tenant's rows from every table, in order; the counts deleted."""
    deleted = {}
    for table in tables:
        result: Any = await session.execute(delete(table).where(_where(table, tenant_id)))
        deleted[table.name] = result.rowcount
    return deleted


def owner_of(cls: type, plugins: PluginSet) -> str | None:
    """The plugin whose package defines ``cls`` (``core`` for the kernel's own)."""
    package = cls.__module__.partition(".")[0]
    if package == "backplane":
        return KERNEL_PLUGIN
    for record in plugins.records.values():
        if record.module and record.module.partition(".")[0] == package:
            return record.name
    return None


def tenant_scoped_classes(plugins: PluginSet) -> list[tuple[str, type, Table]]:
    """``(plugin, class, table)`` for every ``TenantScoped`` class of a loaded plugin whose
    table is in the registered metadata."""
    from backplane.db.tenancy import TenantScoped

    tables = {id(t) for m in registered_metadata(plugins) for t in m.tables.values()}
    found: list[tuple[str, type, Table]] = []
    classes: list[type] = list(TenantScoped.__subclasses__())
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        table = cls.__dict__.get("__table__")
        owner = owner_of(cls, plugins)
        if isinstance(table, Table) and id(table) in tables and owner in plugins.loaded:
            found.append((owner, cls, table))
    return sorted(found, key=lambda item: item[2].name)


def coverage_problems(plugins: PluginSet) -> list[str]:
    """What keeps a tenant's data from being exported, erased or deleted whole: a
    ``TenantScoped`` table of a plugin implementing neither hook, or one without a foreign key
    to ``backplane_tenants`` that cascades on delete. Empty when every table is covered."""
    hooks = {hook: {name for name, _ in plugins.implementations(hook)} for hook in HOOKS}
    problems = []
    for owner, _cls, table in tenant_scoped_classes(plugins):
        if not any(owner in implementers for implementers in hooks.values()):
            problems.append(
                f"{table.name} (plugin {owner}): the plugin implements neither "
                f"{EXPORT_HOOK} nor {ERASE_HOOK}"
            )
        cascading = [
            fk
            for fk in table.foreign_keys
            if fk.target_fullname == f"{TENANTS_TABLE}.id"
            and fk.parent.key == "tenant_id"
            and (fk.ondelete or "").upper() == "CASCADE"
        ]
        if not cascading:
            problems.append(
                f"{table.name} (plugin {owner}): tenant_id has no foreign key to "
                f"{TENANTS_TABLE}.id with ondelete='CASCADE'"
            )
    return problems
