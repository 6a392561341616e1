"""Row locks that make "count, then insert if under the cap" atomic on every database.

A cap check reads how many rows exist and inserts one more; two concurrent requests both read
the count below the cap and both insert. Locking one row that every such request must lock
first (the tenant's, or the user's) serialises them: the second counts only after the first
committed. On PostgreSQL that is ``SELECT ... FOR UPDATE``; SQLite has no row locks, but a
no-op ``UPDATE`` takes the database's write lock for the rest of the transaction, which is the
same guarantee (the others wait up to the busy timeout).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession


async def lock_row(session: AsyncSession, model: Any, key: Any) -> None:
    """Lock the row of ``model`` (a mapped class with an ``id`` primary key) whose id is
    ``key`` until the session's transaction ends; does nothing if there is no such row."""
    table: Table = model.__table__
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(select(table.c.id).where(table.c.id == key).with_for_update())
    else:
        await connection.execute(update(table).where(table.c.id == key).values(id=table.c.id))
