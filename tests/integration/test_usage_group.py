"""Group-committed metering (the V2 inference path): concurrent requests share transactions,
and a hard limit still admits exactly as many as fit (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from backplane.app import create_app
from backplane.billing.group import UsageWriter
from backplane.billing.meters import collect_meters
from backplane.billing.models import Entitlement, UsageCounter, UsageEvent
from backplane.billing.usage import QuotaExceeded, UsageItem
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.tenancy import bind_tenant
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.settings import Settings
from backplane.testing import SeededTenant, seed_tenant
from tests.app_helpers import rails
from tests.billing_helpers import billing_events
from tests.conftest import make_settings
from tests.db_helpers import admin_session, migrate

METER = "inference.requests"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, data_dir: Path) -> tuple[PluginSet, SeededTenant]:
    env = {"BACKPLANE_PLUGINS": "", "BACKPLANE_DB__POOL_SIZE": "10"}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    return plugins, seed_tenant(plugins, "acme")


async def set_limit(settings: Settings, tenant: SeededTenant, limit: float) -> None:
    async with admin_session(settings, "test sets a quota") as session:  # type: ignore[arg-type]
        session.add(Entitlement(tenant_id=tenant.tenant_id, meter=METER, limit=limit, hard=True))
        await session.commit()


async def totals(settings: Settings, tenant: SeededTenant) -> tuple[float, int]:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        bind_tenant(session, tenant.tenant_id)
        counted = await session.scalar(
            select(func.sum(UsageCounter.value)).where(UsageCounter.meter == METER)
        )
        events = await session.scalar(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.meter == METER)
        )
    await engine.dispose()
    return float(counted or 0), int(events or 0)


async def test_concurrent_requests_share_rounds_and_the_limit_admits_exactly(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = world
    await set_limit(plugins.settings, tenant, 20)
    engine = create_engine(plugins.settings)
    writer = writer_for(plugins, engine)

    async def request(i: int) -> Any:
        try:
            return await writer.record(
                tenant.tenant_id,
                [
                    UsageItem(METER, 1, {"model": "m"}),
                    UsageItem("inference.rows", 3, {"model": "m"}),
                ],
            )
        except QuotaExceeded as exc:
            return exc

    outcomes = await asyncio.gather(*[request(i) for i in range(60)])
    await engine.dispose()
    admitted = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert (len(admitted), len(refused)) == (20, 40)
    assert all(r[0].used is not None and r[0].used <= 20 for r in admitted)
    assert sorted(r[0].used for r in admitted) == [float(n) for n in range(1, 21)]
    assert all(e.meter == METER and e.limit == 20 for e in refused)
    assert await totals(plugins.settings, tenant) == (20.0, 20)


async def test_without_a_limit_in_reach_concurrent_requests_share_transactions(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = world
    engine = create_engine(plugins.settings)
    writer = writer_for(plugins, engine)
    results = await asyncio.gather(
        *[writer.record(tenant.tenant_id, [UsageItem(METER)]) for _ in range(60)]
    )
    await engine.dispose()
    assert all(r[0].recorded for r in results)
    # 60 requests, one or two transactions (all queued before the writer's first round, or the
    # first alone and the rest together); a transaction per request before group commit.
    assert writer.rounds <= 2
    assert await totals(plugins.settings, tenant) == (60.0, 60)


async def test_v2_requests_over_the_quota_get_429_before_running(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = world
    await set_limit(plugins.settings, tenant, 10)
    body = {
        "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]
    }
    async with AsyncTestClient(create_app(plugins.settings, plugins=plugins), timeout=60) as client:
        client.headers.update(tenant.headers)
        responses = await asyncio.gather(
            *[client.post("/v2/models/iris_classifier/infer", json=body) for _ in range(30)]
        )
        statuses = sorted(r.status_code for r in responses)
        assert (statuses.count(200), statuses.count(429)) == (10, 20), statuses
        accepted = next(r for r in responses if r.status_code == 200)
        assert accepted.headers["X-Quota-Limit"] == "10"
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["meter"] == METER
        stats = (await client.get("/v2/models/iris_classifier/stats")).json()
        assert stats["model_stats"][0]["inference_stats"]["success"]["count"] == 10  # ran: 10
    assert await totals(plugins.settings, tenant) == (10.0, 10)


def writer_for(plugins: PluginSet, engine: Any, **options: Any) -> UsageWriter:
    """A writer on ``engine`` with the plugins' meters (``options``: the writer's own)."""
    sessions = options.pop("sessions", None) or create_sessionmaker(engine)
    return UsageWriter(
        sessions, collect_meters(plugins), billing_events(plugins.settings), **options
    )


IRIS_BODY = {
    "inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]
}
IRIS_METERS = frozenset({"inference.requests", "inference.rows"})


async def eventually_totals(
    settings: Settings, tenant: SeededTenant, expected: tuple[float, int]
) -> None:
    """Deferred usage is committed by a round within ``metering_flush_ms``: poll for it."""
    for _ in range(200):
        if await totals(settings, tenant) == expected:
            return
        await asyncio.sleep(0.025)
    assert await totals(settings, tenant) == expected


async def test_a_tenant_without_limits_is_answered_before_its_usage_commits(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    """After a round that found no limit on the tenant's meters, requests are answered without
    a transaction of their own: their usage is queued and committed by a later round, and is
    exact once that round ran (here, while the server is still up)."""
    plugins, tenant = world
    app = create_app(plugins.settings, plugins=plugins)
    async with AsyncTestClient(app, timeout=60) as client:
        client.headers.update(tenant.headers)
        writer: UsageWriter = rails(app).usage_writer
        assert not writer.unlimited(tenant.tenant_id, IRIS_METERS)  # nothing learnt yet
        first = await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)
        assert first.status_code == 200
        assert "X-Quota-Limit" not in first.headers
        assert writer.unlimited(tenant.tenant_id, IRIS_METERS)
        rounds = writer.rounds
        responses = await asyncio.gather(
            *[client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY) for _ in range(20)]
        )
        assert [r.status_code for r in responses] == [200] * 20
        assert {r.json()["outputs"][0]["data"][0] for r in responses} == {
            first.json()["outputs"][0]["data"][0]
        }
        await eventually_totals(plugins.settings, tenant, (21.0, 21))
        assert writer.rounds - rounds < 20  # shared rounds, not a transaction per request


def kernel_only(data_dir: Path, **inference: str) -> tuple[PluginSet, SeededTenant]:
    """A migrated SQLite kernel with ``BACKPLANE_INFERENCE__<NAME>`` settings, and a tenant."""
    env = {f"BACKPLANE_INFERENCE__{k.upper()}": v for k, v in inference.items()}
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "", **env}))
    migrate(plugins)
    return plugins, seed_tenant(plugins, "acme")


@pytest.fixture
def slow_flush(data_dir: Path) -> tuple[PluginSet, SeededTenant]:
    return kernel_only(data_dir, metering_flush_ms="60000")


async def test_a_shutdown_commits_the_usage_still_queued(
    slow_flush: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = slow_flush
    app = create_app(plugins.settings, plugins=plugins)
    async with AsyncTestClient(app, timeout=60) as client:
        client.headers.update(tenant.headers)
        for _ in range(6):
            response = await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)
            assert response.status_code == 200
        # The first request's usage committed before it ran (nothing was known yet); the five
        # after it wait in the queue for a round a minute away.
        assert await totals(plugins.settings, tenant) == (1.0, 1)
    assert await totals(plugins.settings, tenant) == (6.0, 6)


async def test_a_limit_set_while_trusted_bills_what_was_served_then_refuses_first(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    """A hard limit added while the writer still trusts "no limit" for the tenant: a request
    answered in that window is served and counted (past the limit: it was served); the round
    that commits it sees the limit, and from then on refusals come before the run again."""
    plugins, tenant = world
    app = create_app(plugins.settings, plugins=plugins)
    async with AsyncTestClient(app, timeout=60) as client:
        client.headers.update(tenant.headers)
        writer: UsageWriter = rails(app).usage_writer
        assert (await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)).is_success
        assert writer.unlimited(tenant.tenant_id, IRIS_METERS)
        await set_limit(plugins.settings, tenant, 1)  # already used up

        served = await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)
        assert served.status_code == 200
        await eventually_totals(plugins.settings, tenant, (2.0, 2))
        assert not writer.unlimited(tenant.tenant_id, IRIS_METERS)

        def runs(stats: dict[str, Any]) -> int:
            return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])

        before = runs((await client.get("/v2/models/iris_classifier/stats")).json())
        refused = await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)
        assert refused.status_code == 429
        assert "outputs" not in refused.json()
        assert refused.json()["meter"] == METER
        after = runs((await client.get("/v2/models/iris_classifier/stats")).json())
        assert after == before  # refused before running
    assert await totals(plugins.settings, tenant) == (2.0, 2)


@pytest.fixture
def no_overlap(data_dir: Path) -> tuple[PluginSet, SeededTenant]:
    return kernel_only(data_dir, metering_overlap_s="0")


async def test_overlap_off_always_meters_first(no_overlap: tuple[PluginSet, SeededTenant]) -> None:
    plugins, tenant = no_overlap
    app = create_app(plugins.settings, plugins=plugins)
    async with AsyncTestClient(app, timeout=60) as client:
        client.headers.update(tenant.headers)
        for count in range(1, 3):
            response = await client.post("/v2/models/iris_classifier/infer", json=IRIS_BODY)
            assert response.status_code == 200
            assert await totals(plugins.settings, tenant) == (float(count), count)
        assert not rails(app).usage_writer.unlimited(tenant.tenant_id, IRIS_METERS)


async def test_a_full_queue_makes_requests_wait_for_their_own_commit(
    world: tuple[PluginSet, SeededTenant],
) -> None:
    plugins, tenant = world
    engine = create_engine(plugins.settings)
    writer = writer_for(plugins, engine, unlimited_s=60, flush_s=60, max_deferred=2)
    items = [UsageItem(METER, 1, {"model": "m"})]
    await writer.record(tenant.tenant_id, items)  # learns "no limit"
    assert writer.defer(tenant.tenant_id, items)
    assert writer.defer(tenant.tenant_id, items)
    assert not writer.defer(tenant.tenant_id, items)  # two are queued: the bound

    async def work() -> str:
        return "ran"

    metered, done = await writer.record_around(tenant.tenant_id, items, work())
    assert done == "ran"
    assert metered[0].recorded  # committed before it ran, with the queue
    assert await totals(plugins.settings, tenant) == (4.0, 4)
    assert writer.defer(tenant.tenant_id, items)  # room again
    await writer.flush()
    await engine.dispose()
    assert await totals(plugins.settings, tenant) == (5.0, 5)


class _FailingFirst:
    """A sessionmaker whose first ``failures`` calls fail, as while the database is down."""

    def __init__(self, sessions: Any, failures: int) -> None:
        self.sessions, self.failures = sessions, failures

    def __call__(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("the database is down")
        return self.sessions()


async def test_deferred_usage_survives_a_database_outage(
    world: tuple[PluginSet, SeededTenant], caplog: pytest.LogCaptureFixture
) -> None:
    plugins, tenant = world
    engine = create_engine(plugins.settings)
    down_at_first = _FailingFirst(create_sessionmaker(engine), failures=3)
    writer = writer_for(plugins, engine, sessions=down_at_first, flush_s=0.001)
    for _ in range(5):
        assert writer.defer(tenant.tenant_id, [UsageItem(METER, 1, {"model": "m"})])
    await eventually_totals(plugins.settings, tenant, (5.0, 5))
    await engine.dispose()
    failures = [r for r in caplog.records if "deferred usage failed" in r.getMessage()]
    assert len(failures) == 1  # logged once per outage, not once per attempt
    assert any("committed again" in r.getMessage() for r in caplog.records)
