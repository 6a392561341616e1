"""Savepoints on SQLite: a ``begin_nested()`` stays inside the transaction around it.

Before the kernel began SQLite transactions itself, the sqlite3 driver emitted no ``BEGIN``
before a ``SAVEPOINT``, so the first savepoint of a session opened the transaction and its
release committed it: rolling the session back afterwards kept what the savepoint wrote. These
tests use the kernel's own savepoint users (:func:`backplane.billing.plans.ensure_plan` and the
period close of :mod:`backplane.billing.jobs`, which isolates tenants by savepoints).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from backplane.billing.plan_models import Plan
from backplane.billing.plans import FREE_PLAN, ensure_plan, plan_by_code
from backplane.db import migrations
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import admin_session


async def _plans(settings: object) -> int:
    async with admin_session(settings, "test counts plans") as session:  # type: ignore[arg-type]
        return int(await session.scalar(select(func.count()).select_from(Plan)) or 0)


async def test_a_plan_created_in_a_savepoint_is_undone_by_the_rollback_around_it(
    data_dir: Path,
) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": ""})
    await asyncio.to_thread(migrations.upgrade, load_plugins(settings))
    before = await _plans(settings)
    async with admin_session(settings, "test creates the free plan") as session:
        assert await plan_by_code(session, FREE_PLAN) is None  # created on first use only
        await ensure_plan(session, FREE_PLAN, "EUR")
        assert await plan_by_code(session, FREE_PLAN) is not None
        await session.rollback()
    assert await _plans(settings) == before
    async with admin_session(settings, "test creates the free plan") as session:
        created = await ensure_plan(session, FREE_PLAN, "EUR")
        again = await ensure_plan(session, FREE_PLAN, "EUR")
        await session.commit()
    assert again.id == created.id
    assert await _plans(settings) == before + 1
