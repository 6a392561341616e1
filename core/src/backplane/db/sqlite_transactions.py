"""SQLite transactions begun by SQLAlchemy, write transactions with ``BEGIN IMMEDIATE``.

The sqlite3 driver (under aiosqlite) handles transactions itself: it emits no ``BEGIN`` before
a ``SELECT`` or a ``SAVEPOINT``, only before the first ``INSERT``/``UPDATE``/``DELETE``. So a
``begin_nested()`` that opened the transaction committed when released, and reads were never
isolated from concurrent commits. SQLAlchemy's documented remedy ("Serializable isolation /
Savepoints / Transactional DDL" in its SQLite dialect notes) is used here: the driver's handling
is switched off on connect and SQLAlchemy's ``begin`` event emits the ``BEGIN`` itself.

A deferred transaction that reads and then writes must upgrade its read lock; when another
writer committed since its read, SQLite refuses at once ("database is locked") instead of
waiting on ``busy_timeout``. Transactions that will write therefore begin with
``BEGIN IMMEDIATE``, which takes the write lock up front and queues on the busy timeout. A
transaction is a write transaction when its session is marked with :func:`mark_writes` (the
request session of every method but GET, HEAD and OPTIONS) or was begun explicitly with
``session.begin()`` (tasks, sign-in, the kernel's own writes). Everything else (GET requests,
lookups on autobegun sessions) begins deferred, so that readers never wait on writers (WAL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransactionOrigin

IMMEDIATE_OPTION = "backplane_sqlite_immediate"
"""Execution option on a connection: its transactions begin with ``BEGIN IMMEDIATE``."""

WRITES_KEY = "backplane.writes"
"""``Session.info`` key: every transaction of this session is a write transaction."""

_IMMEDIATE_BINDS = "backplane.immediate_binds"
"""``Session.info`` key: the session's ``BEGIN IMMEDIATE`` variant of each engine (one object per
engine, as a session keys its connections by bind)."""


def sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy begin ``engine``'s transactions (a SQLite engine's sync engine)."""
    event.listen(engine, "connect", _driver_leaves_transactions_alone)
    event.listen(engine, "begin", _begin)


def _driver_leaves_transactions_alone(dbapi_connection: Any, _record: Any) -> None:
    # Also stops the driver from committing before DDL.
    dbapi_connection.isolation_level = None


def _begin(connection: Any) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def mark_writes(session: Any, writes: bool = True) -> None:
    """Declare that ``session`` (sync or async) writes: on SQLite its transactions begin with
    ``BEGIN IMMEDIATE`` (no effect on PostgreSQL). Set before its first statement."""
    sync = getattr(session, "sync_session", session)
    sync.info[WRITES_KEY] = writes


def write_bind(session: Session, bind: Any) -> Any:
    """``bind``, or its ``BEGIN IMMEDIATE`` variant when the session's transaction writes:
    the session is marked, or its (root) transaction was begun with ``session.begin()``. Both
    are fixed for the life of a transaction, so all its statements use one connection."""
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return bind
    root = session.get_transaction()
    explicit = root is not None and root.origin is SessionTransactionOrigin.BEGIN
    if not (explicit or session.info.get(WRITES_KEY)):
        return bind
    variants: dict[Engine, Engine] = session.info.setdefault(_IMMEDIATE_BINDS, {})
    if bind not in variants:
        variants[bind] = bind.execution_options(**{IMMEDIATE_OPTION: True})
    return variants[bind]
