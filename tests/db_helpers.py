"""Kernel-side database access for tests: what an operator command would do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db.engine import Database
from backplane.settings import Settings
from backplane.testing import _migrate as migrate

__all__ = ["admin_session", "migrate"]


@asynccontextmanager
async def admin_session(settings: Settings, reason: str = "test") -> AsyncIterator[AsyncSession]:
    """A maintenance session (sees every tenant) on its own short-lived connection; the caller
    commits."""
    database = Database(settings)
    try:
        async with database.maintenance(reason) as session:
            yield session
    finally:
        await database.dispose()
