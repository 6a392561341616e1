"""Async engines and sessions for SQLite (embedded) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy.ext.asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backplane.settings import Settings


def create_engine(
    settings: Settings, *, for_migrations: bool = False, pre_ping: bool = True
) -> AsyncEngine:
    """Build the process's engine; SQLite gets WAL and foreign keys, PostgreSQL a bounded pool.

    ``for_migrations`` connects with ``db.migration_url`` (the tables' owner) when it is set.
    ``pre_ping=False`` skips the liveness check on every checkout (on asyncpg a ``BEGIN``,
    ``SELECT``, ``ROLLBACK``: three round trips); only for callers that retry a statement that
    failed on a dead connection themselves, as the task runtime does.
    """
    from backplane.telemetry import instrument_database

    instrument_database()
    create_async_engine = sqlalchemy.ext.asyncio.create_async_engine  # see instrument_database
    url = settings.resolved_migration_url() if for_migrations else settings.resolved_database_url()
    options: dict[str, Any] = {"echo": settings.db.echo, "pool_pre_ping": pre_ping}
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": settings.db.connect_timeout_s}
        engine = create_async_engine(url, **options)
        synchronous = settings.db.sqlite_synchronous

        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, synchronous)

        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    options["pool_size"] = settings.db.pool_size
    options["max_overflow"] = settings.db.max_overflow
    options["connect_args"] = {"timeout": settings.db.connect_timeout_s}
    return create_async_engine(url, **options)


def _sqlite_pragmas(dbapi_connection: Any, synchronous: str) -> None:
    if synchronous not in ("FULL", "NORMAL"):  # settings validate it; never interpolate others
        raise ValueError(f"db.sqlite_synchronous must be FULL or NORMAL, got {synchronous!r}")
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that enforce tenant isolation (see :mod:`backplane.db.tenancy`)."""
    from backplane.db.tenancy import TenantSession

    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TenantSession)


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
