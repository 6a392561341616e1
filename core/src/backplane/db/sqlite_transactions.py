"""SQLite transactions begun by the kernel: ``BEGIN IMMEDIATE`` before anything is written.

The sqlite3 driver (under aiosqlite) handles transactions itself: it emits no ``BEGIN`` before
a ``SAVEPOINT``, only before an ``INSERT``/``UPDATE``/``DELETE``, so a ``begin_nested()`` that
opened the transaction committed when released. SQLAlchemy's documented remedy ("Serializable
isolation / Savepoints / Transactional DDL" in its SQLite dialect notes) is used here: the
driver's handling is switched off on connect and the kernel emits the ``BEGIN`` itself.

Every ``BEGIN`` is ``BEGIN IMMEDIATE``: it takes the write lock up front and waits on
``busy_timeout`` for it. A deferred transaction that read first and then writes must upgrade
its read lock, and when another writer committed since its read SQLite refuses at once
("database is locked") instead of waiting. When the ``BEGIN`` is emitted depends on how the
session's transaction started:

- begun explicitly (``async with session.begin():``, as sign-in, tasks and the kernel's own
  writes do): at once, so that what it reads and what it writes are one atomic unit;
- autobegun (a request's ``db`` session, a lookup): before its first statement that is not a
  read (a write, a ``SAVEPOINT``, DDL), as the driver did, so that reads before it never wait
  on writers and a request that reads slowly never holds the write lock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransactionOrigin

IMMEDIATE_OPTION = "backplane_sqlite_begin_at_once"
"""Execution option on a connection: its transactions begin at once (``session.begin()``)."""

_PENDING = "backplane.sqlite_begin_pending"
"""Connection-record ``info`` key: a transaction whose ``BEGIN`` waits for its first write."""

_READS = frozenset({"SELECT", "PRAGMA", "EXPLAIN", "RELEASE", "ROLLBACK", "COMMIT", "END"})
"""First words of statements that do not need the transaction begun."""

_BINDS = "backplane.sqlite_begin_binds"
"""``Session.info`` key: the session's begin-at-once variant of each engine (one object per
engine, as a session keys its connections by bind)."""


def sqlite_transactions(engine: Engine) -> None:
    """Let the kernel begin ``engine``'s transactions (a SQLite engine's sync engine)."""
    event.listen(engine, "connect", _driver_leaves_transactions_alone)
    event.listen(engine, "begin", _begin)
    event.listen(engine, "before_cursor_execute", _begin_before_writing)
    event.listen(engine, "commit", _ended)
    event.listen(engine, "rollback", _ended)


def _driver_leaves_transactions_alone(dbapi_connection: Any, _record: Any) -> None:
    # Also stops the driver from committing before DDL.
    dbapi_connection.isolation_level = None


def _begin(connection: Any) -> None:
    if connection.get_execution_options().get(IMMEDIATE_OPTION, False):
        connection.info[_PENDING] = False
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.info[_PENDING] = True


def _begin_before_writing(
    connection: Any, cursor: Any, statement: str, *_args: Any, **_kw: Any
) -> None:
    if not connection.info.get(_PENDING):
        return
    words = statement.lstrip().split(None, 1)
    if words and words[0].upper() in _READS:
        return
    connection.info[_PENDING] = False
    cursor.execute("BEGIN IMMEDIATE")


def _ended(connection: Any) -> None:
    connection.info[_PENDING] = False


def write_bind(session: Session, bind: Any) -> Any:
    """``bind``, or its begin-at-once variant when the session's transaction was begun with
    ``session.begin()`` (fixed for the transaction's life: all its statements use one
    connection)."""
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        return bind
    root = session.get_transaction()
    if root is None or root.origin is not SessionTransactionOrigin.BEGIN:
        return bind
    variants: dict[Engine, Engine] = session.info.setdefault(_BINDS, {})
    if bind not in variants:
        variants[bind] = bind.execution_options(**{IMMEDIATE_OPTION: True})
    return variants[bind]
