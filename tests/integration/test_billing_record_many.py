"""``UsageRecorder.record_many``: one batch of statements, the outcome of one ``record`` per item.

Every test runs on SQLite and on PostgreSQL. The reference is the same items recorded one by one
for another tenant of the same database: results, the request's quota results, exceptions and
every table the recorder writes must come out the same.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backplane.billing.aggregate import WindowUsage, _raw, distinct_counts, period_report
from backplane.billing.aggregate import window_usage as hybrid_usage
from backplane.billing.models import (
    Entitlement,
    QuotaNotice,
    UsageCounter,
    UsageDistinct,
    UsageEvent,
    UsageRollup,
)
from backplane.billing.recording import EventError
from backplane.billing.usage import (
    QuotaExceeded,
    UnknownMeterError,
    UsageItem,
    UsageRecorder,
    UsageResult,
    period_bounds,
)
from backplane.billing.webhooks.models import WebhookEvent
from backplane.loading import load_plugins
from backplane.settings import Settings
from backplane.testing import SeededTenant, seed_tenant
from tests.billing_helpers import METERS, billing_events, session_for
from tests.conftest import make_settings
from tests.db_helpers import migrate

AT = datetime(2026, 9, 14, 10, 15, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# Every aggregation, two hours, two periods, ids repeated within the batch and from before,
# one item without an id, and a soft limit on test.tokens first reached in the middle.
LATER = AT + 50 * MINUTE  # the next hour
ITEMS = [
    UsageItem("test.calls", transaction_id="c1", occurred_at=AT),
    UsageItem("test.tokens", 1, {"tokens": 5, "model": "a"}, "t1", AT),
    UsageItem("test.tokens", 1, {"tokens": 7, "model": "b"}, "t2", LATER),
    UsageItem("test.calls", transaction_id="c1", occurred_at=AT),
    UsageItem("test.calls", transaction_id="c0", occurred_at=AT),
    UsageItem("test.peak", 4, transaction_id="p1", occurred_at=AT),
    UsageItem("test.peak", 2, transaction_id="p2", occurred_at=AT + MINUTE),
    UsageItem("test.users", 1, {"user": "u1"}, "u1", AT),
    UsageItem("test.users", 1, {"user": "u1"}, "u2", LATER),
    UsageItem("test.storage", 3.5, transaction_id="s1", occurred_at=AT + 3 * MINUTE),
    UsageItem("test.storage", 1.25, transaction_id="s2", occurred_at=AT + 3 * MINUTE),
    UsageItem("test.calls", occurred_at=AT + timedelta(days=20)),
    UsageItem("test.tokens", 1, {"tokens": 9, "model": "a"}, "t3", LATER),
    UsageItem("test.calls", transaction_id="c2", occurred_at=LATER),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_tenants(
    request: pytest.FixtureRequest, data_dir: Path
) -> tuple[Settings, SeededTenant, SeededTenant]:
    env = {"BACKPLANE_PLUGINS": "", "BACKPLANE_DB__POOL_SIZE": "10"}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    return settings, seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")


async def limit(
    settings: Settings, tenant: SeededTenant, meter: str, value: float, hard: bool
) -> None:
    async with session_for(settings, None, "test sets a limit") as session:
        session.add(Entitlement(tenant_id=tenant.tenant_id, meter=meter, limit=value, hard=hard))


async def prepare(
    settings: Settings,
    tenants: tuple[SeededTenant, ...],
    limits: Mapping[str, tuple[float, bool]],
    first: UsageItem,
) -> None:
    """Give each tenant ``limits`` (meter -> (limit, hard)) and ``first`` recorded before."""
    for tenant in tenants:
        for meter, (value, hard) in limits.items():
            await limit(settings, tenant, meter, value, hard)
        await one_by_one(settings, tenant, [first])


async def one_by_one(
    settings: Settings,
    tenant: SeededTenant,
    items: list[UsageItem],
    quota: list[UsageResult] | None = None,
) -> tuple[list[UsageResult], list[UsageResult]]:
    """The reference: one ``record`` call per item, in one committed transaction; the results
    and the request's quota results (``quota``, which outlives a refusal, as the app's does)."""
    quota = [] if quota is None else quota
    async with session_for(settings, tenant.tenant_id) as session:
        recorder = UsageRecorder(session, METERS, billing_events(settings), quota)
        results = [
            await recorder.record(
                i.code,
                i.value,
                transaction_id=i.transaction_id,
                properties=i.properties,
                occurred_at=i.occurred_at,
            )
            for i in items
        ]
    return results, quota


async def batched(
    settings: Settings,
    tenant: SeededTenant,
    items: list[UsageItem],
    quota: list[UsageResult] | None = None,
) -> tuple[list[UsageResult], list[UsageResult]]:
    quota = [] if quota is None else quota
    async with session_for(settings, tenant.tenant_id) as session:
        results = await UsageRecorder(session, METERS, billing_events(settings), quota).record_many(
            items
        )
    return results, quota


async def snapshot(settings: Settings, tenant: SeededTenant) -> dict[str, list[Any]]:
    """Everything the recorder writes for ``tenant``, without ids that differ by construction."""
    async with session_for(settings, tenant.tenant_id) as session:

        async def rows(*columns: Any) -> list[Any]:
            return sorted(tuple(r) for r in (await session.execute(select(*columns))).all())

        events = await session.execute(
            select(
                UsageEvent.meter, UsageEvent.value, UsageEvent.properties, UsageEvent.occurred_at
            )
        )
        payloads = await session.scalars(
            select(WebhookEvent.payload).where(WebhookEvent.type == "quota.reached")
        )
        notified = [json.loads(p)["data"] for p in payloads]  # id, time, tenant differ
        return {
            "events": sorted((m, v, json.dumps(p, sort_keys=True), o) for m, v, p, o in events),
            "counters": await rows(
                UsageCounter.meter, UsageCounter.period_start, UsageCounter.value
            ),
            "rollups": await rows(
                UsageRollup.meter,
                UsageRollup.hour,
                UsageRollup.group_key,
                UsageRollup.count,
                UsageRollup.total,
                UsageRollup.maximum,
                UsageRollup.latest,
                UsageRollup.latest_at,
            ),
            "distinct": await rows(
                UsageDistinct.meter, UsageDistinct.day, UsageDistinct.group_key, UsageDistinct.value
            ),
            "notices": await rows(QuotaNotice.meter, QuotaNotice.period_start),
            "quota.reached": sorted(notified, key=lambda d: json.dumps(d, sort_keys=True)),
        }


async def test_a_batch_records_what_one_call_per_item_would(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, one, many = two_tenants
    limits = {"test.tokens": (10, False), "test.calls": (100, True)}
    await prepare(settings, (one, many), limits, UsageItem("test.calls", 1, None, "c0", AT))

    expected = await one_by_one(settings, one, ITEMS)
    got = await batched(settings, many, ITEMS)

    assert got == expected
    results, quota_results = got
    assert [r.recorded for r in results] == [
        True,
        True,
        True,
        False,  # repeated within the batch
        False,  # recorded before the batch
        *[True] * 9,
    ]
    assert [(r.meter, r.used) for r in quota_results] == [
        ("test.calls", 2.0),
        ("test.tokens", 5.0),
        ("test.tokens", 12.0),
        ("test.calls", 1.0),  # October: a counter of its own
        ("test.tokens", 21.0),
        ("test.calls", 3.0),
    ]
    assert [r.limit for r in quota_results] == [100, 10, 10, 100, 10, 100]
    state = await snapshot(settings, many)
    assert state == await snapshot(settings, one)
    assert [(d["meter"], d["used"]) for d in state["quota.reached"]] == [("test.tokens", 12.0)]


async def test_repeated_transaction_ids_are_counted_once(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, tenant, _ = two_tenants

    def call(tx: str) -> UsageItem:
        return UsageItem("test.calls", transaction_id=tx)

    first, _ = await batched(settings, tenant, [call("a"), call("a"), call("b")])
    assert [r.recorded for r in first] == [True, False, True]
    again, quota_results = await batched(settings, tenant, [call("b"), call("c"), call("c")])
    assert [r.recorded for r in again] == [False, True, False]
    assert [r.used for r in quota_results] == [3.0]

    ids = [f"x{i}" for i in range(10)]

    async def send(seed: int) -> list[bool]:
        shuffled = random.Random(seed).sample(ids, len(ids))
        results, _ = await batched(settings, tenant, [call(tx) for tx in shuffled])
        return [r.recorded for r in results]

    answers = await asyncio.gather(*[send(seed) for seed in range(5)])
    assert sum(sum(a) for a in answers) == 10
    state = await snapshot(settings, tenant)
    assert len(state["events"]) == 13
    assert state["counters"][0][2] == 13
    assert sum(r[3] for r in state["rollups"]) == 13


async def test_a_batch_crossing_a_hard_limit_raises_and_leaves_nothing(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, one, many = two_tenants
    limits = {"test.calls": (3, True), "test.tokens": (20, True)}
    await prepare(settings, (one, many), limits, UsageItem("test.calls", transaction_id="c0"))
    before = await snapshot(settings, many)
    items = [
        UsageItem("test.calls", transaction_id="c1"),
        UsageItem("test.tokens", properties={"tokens": 5, "model": "a"}, transaction_id="t1"),
        UsageItem("test.calls", transaction_id="c2"),
        UsageItem("test.calls", transaction_id="c3"),  # would be the 4th of 3
        UsageItem("test.calls", transaction_id="c4"),
    ]
    refusals = []
    for record in (one_by_one, batched):
        tenant = one if record is one_by_one else many
        async with session_for(settings, tenant.tenant_id) as session:
            await UsageRecorder(session, METERS, billing_events(settings)).record(
                "test.peak", 1, transaction_id="kept"
            )
        with pytest.raises(QuotaExceeded) as refused:
            await record(settings, tenant, items)
        refusals.append(refused.value)
    one_exc, many_exc = refusals
    assert (many_exc.meter, many_exc.limit, many_exc.used, many_exc.reset_at) == (
        one_exc.meter,
        one_exc.limit,
        one_exc.used,
        one_exc.reset_at,
    )
    assert (many_exc.meter, many_exc.limit, many_exc.used) == ("test.calls", 3, 3)

    after = await snapshot(settings, many)
    assert [e[0] for e in after["events"]] == ["test.calls", "test.peak"]
    assert after["counters"] == before["counters"]  # the refused transaction left nothing
    assert [r for r in after["rollups"] if r[0] != "test.peak"] == before["rollups"]

    # Two limits crossed: the first item in batch order names the meter, as one by one would,
    # although the counters are updated in sorted order (test.calls first).
    crossing = [
        UsageItem("test.tokens", properties={"tokens": 50, "model": "a"}, transaction_id="t9"),
        *[UsageItem("test.calls", transaction_id=f"c{i}") for i in (9, 10, 11)],
    ]
    with pytest.raises(QuotaExceeded) as both:
        await batched(settings, many, crossing)
    assert (both.value.meter, both.value.used) == ("test.tokens", 0)


async def test_the_request_results_stop_where_one_by_one_calls_would(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    """The quota results appended before a refusal feed the 429's headers."""
    settings, one, many = two_tenants
    items = [
        UsageItem("test.tokens", properties={"tokens": 5, "model": "a"}, transaction_id="t1"),
        UsageItem("test.calls", transaction_id="c1"),
        UsageItem("test.calls", transaction_id="c2"),
        UsageItem("test.tokens", properties={"tokens": 5, "model": "a"}, transaction_id="t2"),
    ]
    appended = []
    for tenant, record in ((one, one_by_one), (many, batched)):
        await limit(settings, tenant, "test.calls", 1, hard=True)
        await limit(settings, tenant, "test.tokens", 100, hard=False)
        quota: list[UsageResult] = []
        with pytest.raises(QuotaExceeded):
            await record(settings, tenant, items, quota)
        appended.append([(r.meter, r.used, r.limit) for r in quota])
    assert appended[0] == appended[1] == [("test.tokens", 5.0, 100.0), ("test.calls", 1.0, 1.0)]


async def test_an_invalid_item_fails_the_batch_before_anything_is_written(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, tenant, _ = two_tenants
    good = UsageItem("test.calls", transaction_id="ok")
    bad = [
        (UsageItem("nope.meter"), UnknownMeterError),
        (UsageItem("test.peak", -1), ValueError),
        (UsageItem("test.users", properties={}), EventError),
    ]
    async with session_for(settings, tenant.tenant_id) as session:
        recorder = UsageRecorder(session, METERS, billing_events(settings))
        assert await recorder.record_many([]) == []
        for item, error in bad:
            with pytest.raises(error):
                await recorder.record_many([good, item])
            assert await session.scalar(select(func.count()).select_from(UsageEvent)) == 0
        assert recorder.results == []
    async with session_for(settings, None, "test records without a tenant") as session:
        with pytest.raises(PermissionError):
            await UsageRecorder(session, METERS, billing_events(settings)).record_many([good])


async def test_usage_reads_agree_with_the_raw_events_after_batches(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, tenant, _ = two_tenants
    now = datetime.now(UTC)
    start, end = period_bounds(now)
    for n in range(4):  # requests the way the inference route meters them
        model = {"model": f"m{n % 2}"}
        batch = [
            UsageItem("test.calls", properties=model),
            UsageItem("test.tokens", properties={**model, "tokens": 10 * (n + 1)}),
            UsageItem("test.peak", n + 1),
            UsageItem("test.users", properties={"user": f"u{n % 3}"}),
            UsageItem("test.storage", 5 - n),
        ]
        results, _ = await batched(settings, tenant, batch)
        assert all(r.recorded for r in results)
    async with session_for(settings, tenant.tenant_id) as session:
        latest = frozenset({"test.storage"})
        report = await period_report(session, tenant.tenant_id, start, end, latest)
        uniques = await distinct_counts(session, tenant.tenant_id, start, end)
        assert report["test.calls"].total.value("count") == 4
        assert report["test.tokens"].total.value("sum") == 100
        assert report["test.tokens"].groups['{"model":"m0"}'].value("sum") == 40
        assert report["test.peak"].total.value("max") == 4
        assert report["test.storage"].total.value("latest") == 2
        assert uniques[0]["test.users"] == 3
        counters = dict(
            (await session.execute(select(UsageCounter.meter, UsageCounter.value))).tuples().all()
        )
        assert counters == {"test.calls": 4, "test.tokens": 100}
        for meter in METERS.values():
            for window in ((start, end), (now - timedelta(minutes=30), now + MINUTE)):
                hybrid = await hybrid_usage(session, tenant.tenant_id, meter, *window)
                raw = WindowUsage()
                await _raw(session, tenant.tenant_id, meter, *window, raw)
                kind = meter.aggregation
                assert hybrid.total.value(kind) == raw.total.value(kind), meter.code
                assert {g: f.value(kind) for g, f in hybrid.groups.items()} == {
                    g: f.value(kind) for g, f in raw.groups.items()
                }


async def test_record_is_a_batch_of_one(
    two_tenants: tuple[Settings, SeededTenant, SeededTenant],
) -> None:
    settings, tenant, _ = two_tenants
    await limit(settings, tenant, "test.calls", 2, hard=True)
    async with session_for(settings, tenant.tenant_id) as session:
        recorder = UsageRecorder(session, METERS, billing_events(settings))
        first = await recorder.record("test.calls", transaction_id=str(uuid.uuid4()))
        peak = await recorder.record("test.peak", 3, transaction_id="p")
        duplicate = await recorder.record("test.peak", 3, transaction_id="p")
    assert (first.recorded, first.used, first.limit) == (True, 1.0, 2.0)
    assert first.reset_at == period_bounds(datetime.now(UTC))[1]
    assert peak == UsageResult(recorded=True, meter="test.peak")
    assert duplicate == UsageResult(recorded=False, meter="test.peak")
    assert recorder.results == [first]
