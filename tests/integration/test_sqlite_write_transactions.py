"""SQLite write transactions begin with ``BEGIN IMMEDIATE``: concurrent writers wait.

A deferred SQLite transaction that reads and then writes must upgrade its read lock to the
write lock; when another writer committed since the read, SQLite refuses the upgrade at once
("database is locked") instead of waiting on ``busy_timeout``, and the request answered 500.
Write transactions (requests other than GET/HEAD/OPTIONS, and explicit ``session.begin()``)
now take the write lock when they begin, so they queue on the busy timeout instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, text

from backplane.app import create_app
from backplane.audit.models import AuditEvent
from backplane.db import migrations
from backplane.db.engine import Database
from backplane.loading import load_plugins
from backplane.testing import TEST_PASSWORD, seed_tenant
from tests.conftest import make_settings
from tests.db_helpers import admin_session

CONCURRENT = 12
"""Enough logins at once that, with every transaction deferred, several meet a concurrent commit
between their read and their write (sign-in reads the membership, then writes its audit row and
session): with the ``BEGIN IMMEDIATE`` choice switched off this test fails with "database is
locked"."""


async def test_concurrent_logins_with_the_same_credentials_all_succeed(data_dir: Path) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": "", "BACKPLANE_DB__POOL_SIZE": "16"})
    plugins = load_plugins(settings)
    await asyncio.to_thread(migrations.upgrade, plugins)
    tenant = await asyncio.to_thread(seed_tenant, plugins, "acme")
    body = {"email": tenant.email, "password": TEST_PASSWORD}
    async with AsyncTestClient(create_app(settings, plugins=plugins), timeout=60) as client:
        answers = await asyncio.gather(
            *[client.post("/api/auth/login", json=body) for _ in range(CONCURRENT)]
        )
        assert [a.status_code for a in answers] == [200] * CONCURRENT, [
            a.text for a in answers if a.status_code != 200
        ]
        tokens = {a.json()["refresh_token"] for a in answers}
        assert len(tokens) == CONCURRENT  # each login its own session
    async with admin_session(settings) as session:
        logins = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auth.login")
        )
    assert logins == CONCURRENT


async def test_a_savepoint_that_opened_the_transaction_is_undone_with_it(data_dir: Path) -> None:
    """The sqlite3 driver emitted no BEGIN before SAVEPOINT, so a ``begin_nested()`` that opened
    the transaction committed when released: the outer rollback did not undo it."""
    database = Database(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""}))
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE marks (n INTEGER)"))
        async with database.sessions() as session:
            async with session.begin_nested():
                await session.execute(text("INSERT INTO marks VALUES (1)"))
            await session.rollback()
        async with database.sessions() as session:
            async with session.begin_nested():
                await session.execute(text("INSERT INTO marks VALUES (2)"))
            async with session.begin_nested() as inner:
                await session.execute(text("INSERT INTO marks VALUES (3)"))
                await inner.rollback()
            await session.commit()
        async with database.sessions() as session:
            kept = (await session.scalars(text("SELECT n FROM marks ORDER BY n"))).all()
    finally:
        await database.dispose()
    assert kept == [2]
