"""Usage recording and hard quotas: counted once, held exactly under concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from backplane.app import create_app
from backplane.billing.models import Entitlement, UsageCounter, UsageEvent
from backplane.billing.usage import UsageRecorder
from backplane.db import migrations
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.tenancy import bind_tenant
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.settings import Settings
from backplane.testing import SeededTenant, seed_tenant
from tests.billing_helpers import billing_events
from tests.conftest import make_settings
from tests.db_helpers import admin_session

METER = "kitchen_sink.notes"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    values = {"BACKPLANE_PLUGINS": "kitchen_sink", "BACKPLANE_DB__POOL_SIZE": "10"}
    if request.param == "postgres":
        values["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return values


async def set_limit(settings: object, tenant: SeededTenant, limit: float) -> None:
    async with admin_session(settings, "test sets a quota") as session:  # type: ignore[arg-type]
        session.add(Entitlement(tenant_id=tenant.tenant_id, meter=METER, limit=limit, hard=True))
        await session.commit()


async def totals(settings: object, tenant: SeededTenant) -> tuple[float, int]:
    engine = create_engine(settings)  # type: ignore[arg-type]
    async with create_sessionmaker(engine)() as session:
        bind_tenant(session, tenant.tenant_id)
        counted = await session.scalar(
            select(func.sum(UsageCounter.value)).where(UsageCounter.meter == METER)
        )
        events = await session.scalar(select(func.count()).select_from(UsageEvent))
    await engine.dispose()
    return float(counted or 0), int(events or 0)


async def migrated_tenant(
    data_dir: Path, env: dict[str, str]
) -> tuple[Settings, PluginSet, SeededTenant]:
    """The migrated settings and plugins of ``env``, and tenant ``acme``."""
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    await asyncio.to_thread(migrations.upgrade, plugins)
    return settings, plugins, seed_tenant(plugins, "acme")


async def test_200_concurrent_requests_against_a_limit_of_50(
    env: dict[str, str], data_dir: Path
) -> None:
    settings, plugins, tenant = await migrated_tenant(data_dir, env)
    await set_limit(settings, tenant, 50)
    async with AsyncTestClient(create_app(settings, plugins=plugins), timeout=60) as client:
        client.headers.update(tenant.headers)
        responses = await asyncio.gather(
            *[
                client.post("/api/kitchen_sink/notes", json={"body": f"note {i}"})
                for i in range(200)
            ]
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(201) == 50, statuses
        assert statuses.count(429) == 150, statuses
        refused = next(r for r in responses if r.status_code == 429)
        body = refused.json()
        assert body["meter"] == METER
        assert body["limit"] == 50
        assert refused.headers["X-Quota-Remaining"] == "0"
        assert int(refused.headers["Retry-After"]) > 0
        accepted = next(r for r in responses if r.status_code == 201)
        assert accepted.headers["X-Quota-Limit"] == "50"
        notes = await client.get("/api/kitchen_sink/notes")
        assert len(notes.json()) == 50
    assert await totals(settings, tenant) == (50.0, 50)


async def test_the_same_transaction_ids_are_counted_once_even_concurrently(
    env: dict[str, str], data_dir: Path
) -> None:
    settings, plugins, tenant = await migrated_tenant(data_dir, env)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    meters = {METER: next(m for m in (await _meters(plugins)) if m.code == METER)}

    async def send(transaction_id: str) -> bool:
        async with sessions() as session:
            bind_tenant(session, tenant.tenant_id)
            result = await UsageRecorder(session, meters, billing_events(settings)).record(
                METER, transaction_id=transaction_id
            )
            await session.commit()
            return result.recorded

    ids = [f"tx-{i}" for i in range(10)]
    recorded = await asyncio.gather(*[send(i) for i in ids + ids + ids])
    await engine.dispose()
    assert recorded.count(True) == 10
    assert await totals(settings, tenant) == (10.0, 10)


async def test_a_rolled_back_action_leaves_no_usage(env: dict[str, str], data_dir: Path) -> None:
    settings, plugins, tenant = await migrated_tenant(data_dir, env)
    engine = create_engine(settings)
    meters = {m.code: m for m in await _meters(plugins)}
    async with create_sessionmaker(engine)() as session:
        bind_tenant(session, tenant.tenant_id)
        await UsageRecorder(session, meters, billing_events(settings)).record(
            METER, transaction_id="lost"
        )
        await session.rollback()
    await engine.dispose()
    assert await totals(settings, tenant) == (0.0, 0)


async def _meters(plugins: object) -> list[object]:
    from backplane.billing.meters import collect_meters

    return list(collect_meters(plugins).values())  # type: ignore[arg-type]


def test_cli_sets_a_quota(data_dir: Path) -> None:
    from tests.cli import run_cli

    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert (
        run_cli("tenants", "create", "acme", "--owner-email", "a@acme.org", env=env).returncode == 0
    )
    ok = run_cli("quotas", "set", "acme", METER, "5", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "limited to 5" in ok.stdout
    unknown = run_cli("quotas", "set", "acme", "nope.meter", "5", env=env)
    assert unknown.returncode == 2
    assert "no meter" in unknown.stderr
