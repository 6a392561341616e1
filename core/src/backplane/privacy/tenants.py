"""A whole tenant: exported to one archive, or deleted with everything it owns.

**Export** runs every plugin's ``export_tenant_data`` in one read transaction of the tenant's
own session (row-level secured; ``REPEATABLE READ`` on PostgreSQL, a WAL snapshot on SQLite),
then counts the tenant's rows in every table of the registered metadata in that same snapshot:
a table whose rows the archive does not hold all of is named in the manifest's ``missing`` (the
export is then incomplete, and the command says so).

**Deletion** is one transaction of a maintenance session: the tenant's row is locked, every
plugin's ``tenant_deleting`` hook removes what the generic pass cannot see (rows that name the
tenant without a ``tenant_id`` column, such as login sessions acting in it) and registers what
to do outside the database once the rows are gone (stored files), then the tenant's rows are
deleted from every table of the registered metadata, children first, and the tenant last.

A request of the tenant in flight meanwhile cannot leave a row behind: every tenant table
references ``backplane_tenants`` with ``ON DELETE CASCADE`` (the tests hold every plugin to it).
A row inserted before the deletion holds a lock on the tenant's row that the deletion waits for,
then the cascade deletes it; a row inserted after is refused by the foreign key (the request
fails). On SQLite the one writer at a time gives the same outcome.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError

from backplane.audit.erase import erase_tenant_trail
from backplane.audit.models import EVENTS_TABLE
from backplane.audit.record import record as audit_record
from backplane.db.locks import lock_row
from backplane.db.tenancy import bind_tenant
from backplane.identity.models import Tenant
from backplane.kernel import Kernel, UnknownTenantError, internals
from backplane.privacy.archive import ArchiveWriter
from backplane.privacy.subjects import export_data
from backplane.privacy.tables import (
    count_rows,
    delete_rows,
    existing,
    registered_metadata,
    tenant_tables,
)

log = logging.getLogger("backplane.audit")

DELETING_HOOK = "tenant_deleting"
DELETE_ATTEMPTS = 3
"""A deletion that PostgreSQL picks as a deadlock victim (a request of the tenant locked rows
in the other order) is tried again this many times in all."""


async def find_tenant(kernel: Kernel, tenant: uuid.UUID | str) -> Tenant:
    """The tenant with this id or slug (:class:`UnknownTenantError` if none)."""
    rails = internals(kernel)
    async with rails.database.maintenance("privacy: find a tenant", audit=False) as session:
        column = Tenant.id if isinstance(tenant, uuid.UUID) else Tenant.slug
        found = await session.scalar(select(Tenant).where(column == tenant))
    if found is None:
        raise UnknownTenantError(f"no tenant {tenant!s}")
    return found


async def export_tenant(
    kernel: Kernel,
    tenant: uuid.UUID | str,
    path: Path,
    *,
    on_start: Callable[[int], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Export every plugin's data of ``tenant`` (id or slug) to the zip file ``path``; the
    manifest. ``on_start(total_rows)`` and ``on_rows(n)`` report progress."""
    rails = internals(kernel)
    found = await find_tenant(kernel, tenant)
    tables = tenant_tables(registered_metadata(rails.plugins))
    record = {"id": found.id, "slug": found.slug, "name": found.name}
    async with rails.database.sessions() as session:
        bind_tenant(session, found.id)
        # One snapshot for every plugin's rows and the counts they are checked against (the
        # transaction begins here; nothing is written, so it is rolled back at the end).
        pg = session.bind.dialect.name == "postgresql"
        connection = await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ"} if pg else {}
        )
        if not pg:
            # pysqlite begins a transaction only before a write: without this BEGIN each SELECT
            # would read the latest commit, and a task enqueued meanwhile would make the counts
            # and the rows disagree. A deferred transaction's first read fixes its snapshot.
            await connection.exec_driver_sql("BEGIN")
        tables = await existing(session, tables)
        before = await count_rows(session, tables, found.id)
        if on_start is not None:
            on_start(sum(before.values()))
        writer = ArchiveWriter(path, tenant=record, on_rows=on_rows)
        try:
            view = Kernel(rails, kernel.plugin, db=session, tenant_id=found.id)
            plugins = await export_data(view, writer, None)
        except BaseException:
            writer.abort()
            raise
        finally:
            await session.rollback()
    missing = {
        name: f"the database holds {rows} rows, the archive {_exported(writer, name)}"
        for name, rows in before.items()
        if _exported(writer, name) != rows
    }
    manifest = writer.close(plugins=plugins, counts=before, missing=missing)
    async with rails.database.sessions() as session:
        bind_tenant(session, found.id)
        async with session.begin():
            details = {"scope": "tenant", "rows": sum(before.values()), "complete": not missing}
            await audit_record(
                session, "data.exported", target=("tenant", found.id), details=details
            )
    log.info("privacy: exported tenant %s (%s)", found.slug, found.id)
    return manifest


def _exported(writer: ArchiveWriter, table: str) -> int:
    return int(writer.tables.get(table, {}).get("rows", 0))


async def delete_tenant(kernel: Kernel, tenant: uuid.UUID | str) -> dict[str, Any]:
    """Delete ``tenant`` (id or slug) and everything it owns in every plugin; what was deleted
    (``rows`` per table) and what could not be cleaned up outside the database
    (``problems``: logged, left to the retention sweep)."""
    found = await find_tenant(kernel, tenant)
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            deleted, after_commit = await _delete_once(kernel, found.id)
            break
        except DBAPIError as exc:
            if attempt == DELETE_ATTEMPTS or not _deadlocked(exc):
                raise
            await asyncio.sleep(0.05 * attempt)
    problems = []
    for cleanup in after_commit:
        try:
            result = cleanup()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.exception("privacy: cleanup after deleting tenant %s failed", found.id)
            problems.append(f"{getattr(cleanup, '__qualname__', cleanup)}: {exc}")
    log.info("privacy: deleted tenant %s (%s)", found.slug, found.id)
    return {"tenant": {"id": found.id, "slug": found.slug}, "rows": deleted, "problems": problems}


async def _delete_once(
    kernel: Kernel, tenant_id: uuid.UUID
) -> tuple[dict[str, int], list[Callable[[], Any]]]:
    rails = internals(kernel)
    after_commit: list[Callable[[], Any]] = []
    tables = tenant_tables(registered_metadata(rails.plugins))
    reason = f"privacy: delete tenant {tenant_id}"
    async with rails.database.maintenance(reason) as session, session.begin():
        # First: wait for the tenant's writers in flight (PostgreSQL: their foreign keys'
        # share locks on this row; SQLite: the one write lock), and keep new ones out.
        await lock_row(session, Tenant, tenant_id)
        locked = await session.scalar(select(Tenant).where(Tenant.id == tenant_id))
        if locked is None:
            raise UnknownTenantError(f"no tenant {tenant_id} (deleted meanwhile)")
        await kernel.notify(
            DELETING_HOOK,
            session=session,
            tenant_id=tenant_id,
            tenant=locked,
            after_commit=after_commit.append,
        )
        # The trail refuses deletion while its tenant exists, except through the kernel's one
        # way out (on PostgreSQL only this maintenance role may take it).
        trail = await erase_tenant_trail(session, tenant_id)
        deleted = await delete_rows(session, await existing(session, tables), tenant_id)
        deleted[EVENTS_TABLE] = deleted.get(EVENTS_TABLE, 0) + trail
        await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
        session.expunge_all()
    return deleted, after_commit


def _deadlocked(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001")
