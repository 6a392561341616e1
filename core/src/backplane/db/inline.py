"""SQLite transactions run on the event loop's own thread, for short writes that never wait.

aiosqlite (behind SQLAlchemy's async SQLite dialect) runs every call on a helper thread and
hands the result back through the event loop: a cursor, an ``execute``, a ``fetchall`` and a
``close`` per statement are four hops, and a small metering transaction made about thirty.
Under load each hop waits for the busy event loop and for the GIL, so a transaction that
costs SQLite a few hundred microseconds took 15-20 ms at the median and about 100 ms at the
99th percentile on a 2-core machine, and every metered request waited for one or two of them.

:class:`InlineConnection` keeps aiosqlite's interface (so SQLAlchemy's dialect, the session
and every statement builder work unchanged) but runs each call at once on the calling
thread: an awaited call completes without suspending, and a transaction costs what SQLite
and SQLAlchemy spend on it. The price is that the call blocks the event loop while it runs,
so an engine from :func:`create_inline_engine` is only for transactions of a few short
statements, and it never waits for a lock: its ``busy_timeout`` is 0, a locked database
raises :func:`is_lock_conflict` errors at once, and the caller retries on the ordinary
engine, whose helper thread may wait.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from backplane.settings import Settings


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread, never on a helper."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()  # no helper thread to start

    def stop(self) -> None:
        self._running = False
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def close(self) -> None:
        self.stop()


def create_inline_engine(settings: Settings, synchronous: str) -> AsyncEngine | None:
    """An engine of :class:`InlineConnection` on the SQLite database, or None on PostgreSQL.

    ``synchronous`` is the ``PRAGMA synchronous`` value :mod:`backplane.db.engine` validated.
    A small pool: the connections are only used one transaction at a time on one thread.
    """
    url = settings.resolved_database_url()
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database or ":memory:"
    if database == ":memory:":
        return None  # a private in-memory database per connection: nothing to share

    async def connect() -> InlineConnection:
        connector = partial(sqlite3.connect, database, check_same_thread=False, timeout=0)
        return await InlineConnection(connector, iter_chunk_size=64)

    engine = create_async_engine(
        "sqlite+aiosqlite://",
        async_creator=connect,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=2,
        max_overflow=2,
        echo=settings.db.echo,
    )

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        from backplane.db.engine import sqlite_pragmas

        sqlite_pragmas(dbapi_connection, synchronous, busy_timeout_ms=0)

    event.listen(engine.sync_engine, "connect", pragmas)
    return engine


def is_lock_conflict(error: BaseException) -> bool:
    """Whether ``error`` is SQLite refusing at once because another connection holds a lock."""
    if not isinstance(error, sqlalchemy.exc.OperationalError):
        return False
    code = getattr(error.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(error.orig)
