"""Usage written on the event loop's thread (SQLite): same results as the ordinary path, and
a locked database never blocks the loop (the round falls back to aiosqlite's thread)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from backplane.billing.group import UsageWriter
from backplane.billing.meters import collect_meters
from backplane.billing.usage import QuotaExceeded, UsageItem
from backplane.db import migrations
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.inline import create_inline_engine
from backplane.plugins import PluginSet, load_plugins
from backplane.testing import SeededTenant, seed_tenant
from tests.conftest import make_settings
from tests.integration.test_usage_group import METER, set_limit, totals


@pytest.fixture
def world(data_dir: Path) -> tuple[PluginSet, SeededTenant]:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": ""}))
    migrations.upgrade(plugins)
    return plugins, seed_tenant(plugins, "acme")


def inline_writer(plugins: PluginSet) -> tuple[UsageWriter, list[Any]]:
    settings = plugins.settings
    engine = create_engine(settings)
    inline = create_inline_engine(settings, settings.db.sqlite_synchronous)
    assert inline is not None
    writer = UsageWriter(
        create_sessionmaker(engine), collect_meters(plugins), inline=create_sessionmaker(inline)
    )
    return writer, [engine, inline]


async def test_inline_rounds_admit_exactly_as_many_as_fit(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = world
    await set_limit(plugins.settings, tenant, 20)
    writer, engines = inline_writer(plugins)

    async def request() -> Any:
        try:
            return await writer.record(
                tenant.tenant_id, [UsageItem(METER, 1, {"model": "m"}), UsageItem("inference.rows")]
            )
        except QuotaExceeded as exc:
            return exc

    outcomes = await asyncio.gather(*[request() for _ in range(60)])
    for engine in engines:
        await engine.dispose()
    admitted = [o for o in outcomes if isinstance(o, list)]
    assert (len(admitted), len(outcomes) - len(admitted)) == (20, 40)
    assert sorted(r[0].used for r in admitted) == [float(n) for n in range(1, 21)]
    assert writer.contended == 0
    assert await totals(plugins.settings, tenant) == (20.0, 20)


async def test_a_locked_database_falls_back_and_never_blocks_the_loop(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    """Another connection holds SQLite's write lock for 0.5 s: the inline round is refused at
    once, the round goes to the ordinary engine (which waits for the lock on its own thread),
    and the event loop keeps ticking meanwhile; the usage is then committed exactly once."""
    plugins, tenant = world
    writer, engines = inline_writer(plugins)
    await writer.record(tenant.tenant_id, [UsageItem(METER)])  # connections opened, schema read
    database = make_url(plugins.settings.resolved_database_url()).database
    assert database is not None
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    result = await writer.record(tenant.tenant_id, [UsageItem(METER)])
    waited = time.monotonic() - started
    ticker.cancel()
    release.join()
    holder.close()
    for engine in engines:
        await engine.dispose()
    assert result[0].recorded
    assert result[0].meter == METER
    assert writer.contended == 1
    assert waited >= 0.4  # it did wait for the lock ...
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert len(ticks) >= 20
    assert max(gaps) < 0.2
    assert await totals(plugins.settings, tenant) == (2.0, 2)


async def test_inline_connections_run_on_the_calling_thread(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, _ = world
    inline = create_inline_engine(plugins.settings, "NORMAL")
    assert inline is not None
    seen: list[int] = []
    async with inline.connect() as connection:
        raw = await connection.get_raw_connection()
        raw.driver_connection._conn.create_function(  # type: ignore[union-attr]
            "thread_of_call", 0, lambda: seen.append(threading.get_ident()) or 0
        )
        await connection.execute(text("SELECT thread_of_call()"))
        timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    await inline.dispose()
    assert seen == [threading.get_ident()]
    assert timeout == 0  # never waits for a lock on the event loop's thread


def test_only_a_sqlite_file_gets_an_inline_engine(data_dir: Path) -> None:
    postgres = make_settings(data_dir, {"BACKPLANE_DATABASE_URL": "postgresql://u@127.0.0.1/db"})
    memory = make_settings(data_dir, {"BACKPLANE_DATABASE_URL": "sqlite+aiosqlite:///:memory:"})
    assert create_inline_engine(postgres, "NORMAL") is None
    assert create_inline_engine(memory, "NORMAL") is None
