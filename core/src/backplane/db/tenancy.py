"""Tenant isolation in the ORM: every session is bound to one tenant or it sees nothing.

Two layers, because either alone leaks: (1) this module scopes every ORM ``SELECT``, relationship
load and ORM-enabled bulk ``UPDATE``/``DELETE`` of a :class:`TenantScoped` entity to the session's
tenant with ``with_loader_criteria`` and stamps/checks ``tenant_id`` before every flush;
(2) on PostgreSQL, row-level security (see :mod:`backplane.db.rls`) filters raw SQL too, keyed on
``app.tenant_id``, which :class:`TenantSession` sets with ``set_config(..., true)`` at the start
of every transaction. A session with no tenant fails closed: no rows, and flushes of tenant rows
are refused. Kernel administration that must cross tenants uses :func:`bypass_tenancy`, which
is explicit, named and logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Uuid, event, false, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    UOWTransaction,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

log = logging.getLogger("backplane.audit")

TENANT_KEY = "backplane.tenant_id"
BYPASS_KEY = "backplane.tenancy_bypass"
MAINTENANCE_KEY = "backplane.maintenance"
"""Set in ``Session.info`` by the maintenance sessionmaker: only such sessions may bypass."""


class TenantIsolationError(PermissionError):
    """A flush would write a row of another tenant, or a tenant row without a tenant."""


class TenantScoped:
    """Mixin for tenant-owned tables: an indexed, non-null ``tenant_id``, enforced by sessions.

    On PostgreSQL also call :func:`backplane.db.rls.enable_tenant_rls` in the table's migration.
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(Uuid, index=True, nullable=False)


class TenantSession(Session):
    """The sync session behind every kernel ``AsyncSession``; carries its tenant in ``info``."""


def bind_tenant(session: Any, tenant_id: uuid.UUID | None) -> None:
    """Scope ``session`` (sync or async) to ``tenant_id`` for its next transactions."""
    _sync(session).info[TENANT_KEY] = tenant_id


def bypass_tenancy(session: Any, reason: str, *, audit: bool = True) -> None:
    """Let a maintenance ``session`` read and write every tenant's rows, for kernel paths only.

    Only sessions of the maintenance connection may (:class:`TenantIsolationError` otherwise):
    on PostgreSQL only its role can see through row-level security, so a bypass on an
    application session would silently see nothing. The reason is logged to the
    ``backplane.audit`` logger (``audit=False`` only for the kernel's per-request credential
    lookups, which would flood it), quoted with ``repr`` so that one reason is one log line
    whatever a request put in it; plugins never receive such a session.
    """
    if not reason.strip():
        raise ValueError("bypassing tenant isolation needs a reason for the audit log")
    sync = _sync(session)
    if not sync.info.get(MAINTENANCE_KEY):
        raise TenantIsolationError(
            "only maintenance sessions (Database.maintenance) may bypass tenant isolation"
        )
    if audit:
        log.info("tenant isolation bypassed: %r", reason)
    sync.info[BYPASS_KEY] = reason


@contextlib.contextmanager
def sqlite_bypass(session: Any, reason: str) -> Iterator[None]:
    """SQLite only: let a kernel task's own session see every tenant for a block.

    SQLite has no row-level security and one writer at a time: a second connection of the
    task's would wait for the write lock its own session holds, so the kernel's cross-tenant
    tasks use that session, marked for the ORM layer for the duration of the block.
    """
    sync = _sync(session)
    if sync.get_bind().dialect.name != "sqlite":
        raise TenantIsolationError("only SQLite sessions may be bypassed in place")
    sync.info[MAINTENANCE_KEY] = True
    try:
        bypass_tenancy(session, reason)
        yield
    finally:
        sync.info.pop(BYPASS_KEY, None)
        sync.info.pop(MAINTENANCE_KEY, None)


@contextlib.contextmanager
def acting_as(session: Any, tenant_id: uuid.UUID) -> Iterator[None]:
    """Let ``session`` act as ``tenant_id`` alone for a block (its ORM reads and writes scoped,
    a bypass suspended), then restore it: for plugin hooks called inside a kernel transaction
    that crosses tenants, such as ``tenant_created`` while a tenant is being made."""
    info = _sync(session).info
    saved = {key: info.pop(key) for key in (TENANT_KEY, BYPASS_KEY) if key in info}
    info[TENANT_KEY] = tenant_id
    try:
        yield
    finally:
        info.pop(TENANT_KEY, None)
        info.update(saved)


def session_tenant(session: Any) -> uuid.UUID | None:
    value: uuid.UUID | None = _sync(session).info.get(TENANT_KEY)
    return value


def _sync(session: Any) -> Session:
    return session.sync_session if hasattr(session, "sync_session") else session  # type: ignore[no-any-return]


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    """Add ``tenant_id = :tenant`` (or ``false``) to ORM reads and bulk updates/deletes."""
    if state.session.info.get(BYPASS_KEY):
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_select and (state.is_column_load or state.is_relationship_load):
        return  # the criteria already ride along from the parent statement's options
    state.statement = state.statement.options(_criteria(state.session.info.get(TENANT_KEY)))


@functools.lru_cache(maxsize=4096)
def _criteria(tenant_id: uuid.UUID | None) -> Any:
    """The tenant's criteria option, built once per tenant (building one analyses its lambda:
    on a one-row read that cost about as much as the query's own compiled-statement lookup).
    An option is immutable, so one serves every statement of that tenant."""
    if tenant_id is None:
        return with_loader_criteria(TenantScoped, lambda cls: false(), include_aliases=True)
    return with_loader_criteria(
        TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True
    )


@event.listens_for(TenantSession, "before_flush")
def _stamp_and_check(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    """Stamp new rows with the session's tenant; refuse rows and changes of another tenant."""
    if session.info.get(BYPASS_KEY):
        return
    tenant_id = session.info.get(TENANT_KEY)
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if tenant_id is None:
            raise TenantIsolationError(
                f"cannot add {type(obj).__name__} without a tenant bound to the session"
            )
        if obj.tenant_id is None:
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id:
            raise TenantIsolationError(f"{type(obj).__name__} belongs to another tenant")
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise TenantIsolationError(f"{type(obj).__name__} belongs to another tenant")


SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")
"""Expose a tenant (``tenant_id``: its UUID as text, or empty for none) to row-level security
until the transaction ends. Bound, not inlined: asyncpg prepares each distinct statement text
on each connection, keeping 100 per connection, so a text per tenant cost a prepare round trip
whenever a connection served a tenant it had not served lately, and with more tenants than
that pushed the application's own statements out of the cache."""


@event.listens_for(TenantSession, "after_begin")
def _set_database_tenant(session: Session, _transaction: Any, connection: Any) -> None:
    """On PostgreSQL, expose the tenant to row-level security for this transaction only."""
    if connection.dialect.name != "postgresql":
        return
    tenant_id = session.info.get(TENANT_KEY)
    connection.execute(SET_TENANT, {"tenant_id": str(tenant_id) if tenant_id else ""})


async def rebind_tenant(session: Any, tenant_id: uuid.UUID | None) -> None:
    """Bind an async session already inside a transaction to ``tenant_id``, including the
    PostgreSQL setting row-level security reads (normally set when the transaction begins)."""
    bind_tenant(session, tenant_id)
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(SET_TENANT, {"tenant_id": str(tenant_id) if tenant_id else ""})
