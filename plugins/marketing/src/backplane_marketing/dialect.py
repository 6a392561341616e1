"""``INSERT ... ON CONFLICT`` through SQLAlchemy's dialect inserts (PostgreSQL and SQLite have
the same clause; the kernel runs on those two)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_name(db: AsyncSession) -> str:
    return db.get_bind().dialect.name


def insert_for(db: AsyncSession, table: Any) -> Any:
    """The dialect's ``insert(table)``, which has ``on_conflict_do_nothing/_update``."""
    if dialect_name(db) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
