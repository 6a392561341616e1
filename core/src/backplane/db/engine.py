"""Async engines and sessions for SQLite (embedded) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import sqlalchemy.ext.asyncio
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backplane.db.types import aware_datetimes
from backplane.settings import Settings

log = logging.getLogger(__name__)


Purpose = Literal["app", "maintenance", "migrations"]


def create_engine(
    settings: Settings, *, purpose: Purpose = "app", pre_ping: bool = True
) -> AsyncEngine:
    """Build an engine; SQLite gets WAL, foreign keys and aware datetimes (see
    :mod:`backplane.db.types`), every engine a bounded pool.

    ``purpose`` picks the connection: ``app`` (the application role, bound by row-level
    security), ``maintenance`` (``db.maintenance_url``: kernel work across tenants) or
    ``migrations`` (``db.migration_url``, the tables' owner). A checkout waits at most
    ``db.pool_timeout_s`` for a free connection (``sqlalchemy.exc.TimeoutError`` after).
    On PostgreSQL every checkout first replaces a connection the server has ended (a
    restart, an idle timeout, ``pg_terminate_backend``), which asyncpg notices when the server
    closes the socket: a local check, where SQLAlchemy's ``pool_pre_ping`` costs three round
    trips (``BEGIN``, ``SELECT``, ``ROLLBACK``) per checkout. A connection that died without
    the server closing it (a lost network) fails its statement instead; SQLAlchemy then
    replaces every pooled connection. ``pre_ping=False`` skips even the local check (the task
    runtime retries a statement that failed on a dead connection itself). SQLite connections
    are files: nothing to check.
    """
    from backplane.telemetry import instrument_database

    instrument_database()
    create_async_engine = sqlalchemy.ext.asyncio.create_async_engine  # see instrument_database
    db = settings.db
    url = {
        "app": settings.resolved_database_url,
        "maintenance": settings.resolved_maintenance_url,
        "migrations": settings.resolved_migration_url,
    }[purpose]()
    options: dict[str, Any] = {
        "echo": db.echo,
        "pool_timeout": db.pool_timeout_s,
        "pool_size": db.maintenance_pool_size if purpose == "maintenance" else db.pool_size,
        "max_overflow": db.maintenance_max_overflow
        if purpose == "maintenance"
        else db.max_overflow,
        "connect_args": {"timeout": db.connect_timeout_s},
    }
    if not url.startswith("sqlite"):
        asyncpg = make_url(url).get_driver_name() == "asyncpg"
        if asyncpg:  # a tenant transaction's BEGIN carries its set_config (see db._begin)
            from backplane.db._begin import TenantBeginConnection

            options["connect_args"]["connection_class"] = TenantBeginConnection
        engine = create_async_engine(url, **options)
        if pre_ping:
            event.listen(engine.sync_engine.pool, "checkout", _replace_if_closed)
        if asyncpg:
            event.listen(engine.sync_engine.pool, "checkin", _forget_on_checkin)
            event.listen(engine.sync_engine, "commit", _forget_at_end)
            event.listen(engine.sync_engine, "rollback", _forget_at_end)
        return engine
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **options)
    aware_datetimes(engine.dialect)
    synchronous = db.sqlite_synchronous

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, synchronous)

    event.listen(engine.sync_engine, "connect", pragmas)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """``checkout``: SQLAlchemy's documented way to refuse a dead connection (the pool
    discards it and checks out another)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database server closed this connection")


def _forget_on_checkin(dbapi_connection: Any, _record: Any) -> None:
    """``checkin``: a statement left for a ``BEGIN`` that never came stays with its
    transaction, never with the next user of the connection."""
    from backplane.db._begin import forget

    if dbapi_connection is not None:
        forget(dbapi_connection.driver_connection)


def _forget_at_end(connection: Any) -> None:
    """``commit``/``rollback`` of a connection's transaction: as :func:`_forget_on_checkin`,
    for a connection that stays checked out (a session joined to an outer connection)."""
    from backplane.db._begin import forget

    fairy = getattr(connection, "_dbapi_connection", None)  # never reconnect from here
    if fairy is not None:
        forget(fairy.driver_connection)


def _sqlite_pragmas(dbapi_connection: Any, synchronous: str) -> None:
    if synchronous not in ("FULL", "NORMAL"):  # settings validate it; never interpolate others
        raise ValueError(f"db.sqlite_synchronous must be FULL or NORMAL, got {synchronous!r}")
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def create_sessionmaker(
    engine: AsyncEngine, *, maintenance: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions that enforce tenant isolation (see :mod:`backplane.db.tenancy`);
    ``maintenance`` marks those of the maintenance connection, the only ones that may bypass."""
    from backplane.db.tenancy import MAINTENANCE_KEY, TenantSession

    return async_sessionmaker(
        engine,
        expire_on_commit=False,
        sync_session_class=TenantSession,
        info={MAINTENANCE_KEY: True} if maintenance else None,
    )


class DatabaseRoleError(RuntimeError):
    """The maintenance connection cannot see through row-level security (PostgreSQL)."""


class Database:
    """The database of one process, through two pools that never wait on each other.

    ``sessions`` are the application role's, bound to a tenant by the caller and held by row-
    level security on PostgreSQL: requests, tasks and plugins use them. :meth:`maintenance`
    sessions are the kernel's, for work that must see every tenant (finding an API key's
    tenant, a user's memberships, logging in, operator commands, cross-tenant jobs); they
    connect with ``db.maintenance_url`` as a role that bypasses row-level security, from a
    pool of their own, and are never held while waiting for an application connection.
    """

    def __init__(self, settings: Settings, *, pre_ping: bool = True) -> None:
        self.settings = settings
        self.engine = create_engine(settings, pre_ping=pre_ping)
        self.sessions = create_sessionmaker(self.engine)
        self.maintenance_engine = create_engine(settings, purpose="maintenance", pre_ping=pre_ping)
        self._maintenance = create_sessionmaker(self.maintenance_engine, maintenance=True)

    def maintenance(self, reason: str, *, audit: bool = True) -> AsyncSession:
        """A new session that reads and writes every tenant's rows; ``reason`` is audited
        (``audit=False`` only for per-request credential lookups)."""
        from backplane.db.tenancy import bypass_tenancy

        session = self._maintenance()
        bypass_tenancy(session, reason, audit=audit)
        return session

    async def check_roles(self) -> None:
        """PostgreSQL: refuse a maintenance role that row-level security would blind, and warn
        when the application role is not bound by it (one role for everything)."""
        if self.engine.dialect.name != "postgresql":
            return
        query = text(
            "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        )
        async with self.maintenance_engine.connect() as connection:
            role, bypasses = (await connection.execute(query)).one()
        if not bypasses:
            raise DatabaseRoleError(
                f"the maintenance connection (BACKPLANE_DB__MAINTENANCE_URL, else "
                f"BACKPLANE_DB__MIGRATION_URL, else BACKPLANE_DATABASE_URL) connects as {role!r}, "
                "which row-level security binds, so kernel work across tenants would see "
                f'nothing: use a superuser, or run ALTER ROLE "{role}" BYPASSRLS as one'
            )
        async with self.engine.connect() as connection:
            role, bypasses = (await connection.execute(query)).one()
        if bypasses:
            log.warning(
                "row-level security does not bind the application's database role %r (a "
                "superuser or BYPASSRLS role): tenant isolation rests on the ORM alone. In "
                "production connect as a role without them (BACKPLANE_DB__APP_ROLE grants it "
                "what it needs at every upgrade)",
                role,
            )

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.maintenance_engine.dispose()


async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back if it raises."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def ping(engine: AsyncEngine, timeout_s: float) -> str | None:
    """Return None if the database answers within ``timeout_s``, else the problem."""
    try:
        async with asyncio.timeout(timeout_s):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {timeout_s} s"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health check
        return f"{type(exc).__name__}: {exc}"
    return None
