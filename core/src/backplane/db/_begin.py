"""A tenant transaction's start in one round trip on PostgreSQL with asyncpg.

Every tenant transaction sets ``app.tenant_id`` for row-level security (see
:mod:`backplane.db.tenancy`). SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily, just before
the transaction's first statement, so setting the tenant with a statement of its own costs a
second round trip (``BEGIN``, then ``SELECT set_config(...)``) before any work. Connections of
the kernel's PostgreSQL engines are :class:`TenantBeginConnection`: the session's
``after_begin`` hands them the ``set_config`` text, and the ``BEGIN`` that follows carries it in
the same simple-protocol query (``BEGIN; SELECT set_config(...);``), one round trip. The text is
used by that ``BEGIN`` only; a transaction that ends before sending one (no statement ran)
forgets it, and so does a connection going back to the pool, so it can never reach another
transaction.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]


class TenantBeginConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose next ``BEGIN`` can carry one more statement."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_next_begin: str | None = None

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        pending = self.with_next_begin
        if pending is not None and not args and query.startswith("BEGIN"):
            self.with_next_begin = None
            query = f"{query} {pending}"
        result: str = await super().execute(query, *args, timeout=timeout)
        return result


def send_with_begin(connection: Any, statement: str) -> bool:
    """Have the transaction ``connection`` (a SQLAlchemy sync ``Connection`` whose transaction
    has begun but not yet sent ``BEGIN``) send ``statement`` with its ``BEGIN``; False when it
    cannot (another driver, a transaction already started on the server, autocommit): run it
    yourself."""
    fairy = connection.connection
    driver = fairy.driver_connection
    adapted = fairy.dbapi_connection
    if not isinstance(driver, TenantBeginConnection) or driver.is_in_transaction():
        # in a transaction begun on asyncpg directly (the task runtime's claim), SQLAlchemy's
        # "BEGIN" is a SAVEPOINT: the statement must run on its own
        return False
    if getattr(adapted, "_started", True) or getattr(adapted, "isolation_level", None) == (
        "autocommit"
    ):
        return False
    driver.with_next_begin = statement.rstrip(";") + ";"
    return True


def forget(driver: Any) -> None:
    """Drop a statement no ``BEGIN`` carried (the transaction ended without one)."""
    if isinstance(driver, TenantBeginConnection):
        driver.with_next_begin = None
