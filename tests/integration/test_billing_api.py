"""The billing API: events in batches, usage, plans and the subscription, invoices, 402."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient, TestClient
from sqlalchemy import func, select

from backplane import requires_entitlement
from backplane.app import create_app
from backplane.billing.invoices import close_tenant_period
from backplane.billing.models import UsageEvent, UsageRollup
from backplane.billing.webhooks.models import WebhookEvent
from backplane.db import migrations
from backplane.loading import load_plugins
from backplane.testing import SeededTenant, seed_tenant
from tests.app_helpers import rails
from tests.billing_helpers import (
    METERS,
    billing_context,
    billing_events,
    history,
    put_plans,
    session_for,
)
from tests.conftest import make_settings
from tests.db_helpers import migrate

LIMITED = {
    "code": "limited",
    "name": "Limited",
    "self_service": True,
    "features": ["test.export"],
    "static": {"seats": 3},
    "limits": [{"meter": "test.calls", "limit": 5, "hard": True}],
    "charges": [{"meter": "test.calls", "model": "standard", "unit_price": "10"}],
}
PRIVATE = {"code": "acme-private", "name": "Private", "fee": 50_000}


@get("/api/test-export", guards=[requires_entitlement("test.export")], sync_to_thread=False)
def export_route() -> dict[str, str]:
    return {"ok": "yes"}


@pytest.fixture
def billing_app(app: Litestar) -> Litestar:
    rails(app).meters.update(METERS)  # the same dict the recorder and the routes read
    app.register(export_route)
    return app


@pytest.fixture
def api(billing_app: Litestar, tenant_a: SeededTenant) -> Iterator[TestClient[Litestar]]:
    with TestClient(billing_app) as client:
        client.headers.update(tenant_a.headers)
        yield client


def batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def test_a_batch_answers_per_event_and_counts_each_id_once(api: TestClient[Litestar]) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = batch(
        {"transaction_id": "t1", "code": "test.tokens", "properties": {"tokens": 5, "model": "a"}},
        {"transaction_id": "t2", "code": "test.tokens", "properties": {"tokens": 7, "model": "b"}},
        {"transaction_id": "t1", "code": "test.tokens", "properties": {"tokens": 5, "model": "a"}},
        {"transaction_id": "t3", "code": "nope.meter"},
        {"transaction_id": "t4", "code": "test.peak", "value": -1},
        {"transaction_id": "t5", "code": "test.calls", "timestamp": future},
        {"transaction_id": "t6", "code": "test.calls", "timestamp": "2026-11-01T10:00:00"},
        {"transaction_id": "t7", "code": "test.users", "properties": {}},
        {"transaction_id": "t8", "code": "test.users", "properties": {"user": "u1"}},
    )
    first = api.post("/api/billing/events", json=body)
    assert first.status_code == 200, first.text
    out = first.json()
    statuses = [(r["transaction_id"], r["status"]) for r in out["results"]]
    assert statuses == [
        ("t1", "recorded"),
        ("t2", "recorded"),
        ("t1", "duplicate"),
        ("t3", "error"),
        ("t4", "error"),
        ("t5", "error"),
        ("t6", "error"),
        ("t7", "error"),
        ("t8", "recorded"),
    ]
    errors = {r["transaction_id"]: r["error"] for r in out["results"] if r["error"]}
    assert "no meter 'nope.meter'" in errors["t3"]
    assert "not negative" in errors["t4"]
    assert "future" in errors["t5"]
    assert "time zone" in errors["t6"]
    assert "'user'" in errors["t7"]
    assert (out["recorded"], out["duplicates"], out["errors"]) == (3, 1, 5)

    again = api.post("/api/billing/events", json=body).json()
    assert again["recorded"] == 0
    assert {r["transaction_id"] for r in again["results"] if r["status"] == "duplicate"} == {
        "t1",
        "t2",
        "t8",
    }
    usage = {m["meter"]: m for m in api.get("/api/billing/usage").json()["meters"]}
    assert usage["test.tokens"]["value"] == 12
    assert usage["test.users"]["value"] == 1


def test_usage_reports_each_aggregation_per_group_and_day(api: TestClient[Litestar]) -> None:
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day1, day2 = start + timedelta(hours=1), start + timedelta(hours=1, minutes=5)
    if now < day2:  # the first hour of a month: use "now" for both
        day1 = day2 = now
    stamp = lambda t: t.isoformat()  # noqa: E731
    events = [
        ("c1", "test.calls", None, {}, day1),
        ("c2", "test.calls", None, {}, now),
        ("k1", "test.tokens", None, {"tokens": 100, "model": "a"}, day1),
        ("k2", "test.tokens", None, {"tokens": 50, "model": "b"}, now),
        ("k3", "test.tokens", None, {"tokens": 25, "model": "a"}, now),
        ("p1", "test.peak", 4, {}, day1),
        ("p2", "test.peak", 9, {}, day2),
        ("p3", "test.peak", 2, {}, now),
        ("u1", "test.users", None, {"user": "ann"}, day1),
        ("u2", "test.users", None, {"user": "bob"}, now),
        ("u3", "test.users", None, {"user": "ann"}, now),
        ("s1", "test.storage", 8, {}, day1),
        ("s2", "test.storage", 3, {}, now),
    ]
    body = batch(
        *[
            {"transaction_id": t, "code": c, "value": v, "properties": p, "timestamp": stamp(w)}
            for t, c, v, p, w in events
        ]
    )
    assert api.post("/api/billing/events", json=body).json()["recorded"] == len(events)
    report = api.get("/api/billing/usage").json()
    assert report["period_start"].startswith(start.strftime("%Y-%m-%dT00:00:00"))
    usage = {m["meter"]: m for m in report["meters"]}
    assert usage["test.calls"]["value"] == 2
    assert usage["test.tokens"]["value"] == 175
    assert usage["test.tokens"]["groups"] == [
        {"group": {"model": "a"}, "value": 125},
        {"group": {"model": "b"}, "value": 50},
    ]
    assert usage["test.peak"]["value"] == 9
    assert usage["test.users"]["value"] == 2
    assert usage["test.storage"]["value"] == 3
    days = {d["date"]: d["value"] for d in usage["test.tokens"]["days"]}
    assert sum(days.values()) == 175
    assert days[day1.strftime("%Y-%m-%d")] >= 100
    assert usage["kitchen_sink.notes"]["value"] == 0  # every registered meter is listed
    assert usage["test.calls"]["limit"] is None


def test_a_batch_keeps_what_fits_under_a_hard_limit_and_notifies_once(
    api: TestClient[Litestar], billing_app: Litestar, tenant_a: SeededTenant
) -> None:
    asyncio.run(put_plans(rails(billing_app).settings, LIMITED))
    assert api.put("/api/billing/subscription", json={"plan": "limited"}).status_code == 200
    calls = [{"transaction_id": f"c{i}", "code": "test.calls"} for i in range(8)]
    out = api.post("/api/billing/events", json=batch(*calls)).json()
    assert [r["status"] for r in out["results"]] == ["recorded"] * 5 + ["error"] * 3
    assert "quota for test.calls spent" in out["results"][5]["error"]
    more = api.post(
        "/api/billing/events", json=batch({"transaction_id": "c5", "code": "test.calls"})
    )
    assert more.json()["results"][0]["status"] == "error"  # the refused id was not kept
    usage = {m["meter"]: m for m in api.get("/api/billing/usage").json()["meters"]}
    assert (usage["test.calls"]["value"], usage["test.calls"]["limit"]) == (5, 5)

    async def count() -> tuple[int, int]:
        async with session_for(rails(billing_app).settings, tenant_a.tenant_id) as session:
            notices = await session.scalar(
                select(func.count()).where(WebhookEvent.type == "quota.reached")
            )
            events = await session.scalar(select(func.count()).select_from(UsageEvent))
            return int(notices or 0), int(events or 0)

    assert asyncio.run(count()) == (1, 5)


def test_plans_and_self_service_plan_changes_keep_usage(
    api: TestClient[Litestar], billing_app: Litestar, tenant_b: SeededTenant
) -> None:
    settings = rails(billing_app).settings
    asyncio.run(put_plans(settings, LIMITED, PRIVATE))
    listed = [p["code"] for p in api.get("/api/billing/plans").json()]
    assert listed == ["free", "limited"]  # self-service ones, free being A's own too
    assert api.get("/api/billing/plans/acme-private").status_code == 404
    assert api.get("/api/billing/plans/limited").json()["static"] == {"seats": 3}
    assert api.get("/api/billing/subscription").json()["plan"]["code"] == "free"

    calls = [{"transaction_id": f"c{i}", "code": "test.calls"} for i in range(3)]
    assert api.post("/api/billing/events", json=batch(*calls)).json()["recorded"] == 3
    refused = api.put("/api/billing/subscription", json={"plan": "acme-private"})
    assert refused.status_code == 400
    assert "self-service" in refused.json()["detail"]
    changed = api.put("/api/billing/subscription", json={"plan": "limited"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"]["code"] == "limited"
    usage = {m["meter"]: m for m in api.get("/api/billing/usage").json()["meters"]}
    assert (usage["test.calls"]["value"], usage["test.calls"]["limit"]) == (3, 5)
    # an operator's private plan is visible to the tenant on it only
    asyncio.run(history(settings, tenant_b.tenant_id, ("acme-private", datetime.now(UTC))))
    as_b = {"Authorization": f"Bearer {tenant_b.api_key}"}
    assert api.get("/api/billing/plans/acme-private", headers=as_b).status_code == 200
    assert api.get("/api/billing/plans/acme-private").status_code == 404


def test_only_owners_change_plans_and_viewers_cannot_bill(
    billing_app: Litestar, migrated: Any
) -> None:
    admin = seed_tenant(migrated, "admins", key_role="admin")
    viewer = seed_tenant(migrated, "viewers", key_role="viewer")
    with TestClient(billing_app) as client:
        as_admin = {"Authorization": f"Bearer {admin.api_key}"}
        as_viewer = {"Authorization": f"Bearer {viewer.api_key}"}
        put = client.put("/api/billing/subscription", json={"plan": "free"}, headers=as_admin)
        assert put.status_code == 403
        assert client.get("/api/billing/usage", headers=as_admin).status_code == 200
        body = batch({"transaction_id": "x", "code": "test.calls"})
        assert client.post("/api/billing/events", json=body, headers=as_viewer).status_code == 403
        assert client.get("/api/billing/invoices", headers=as_viewer).status_code == 403
        assert client.post("/api/billing/events", json=body).status_code == 401


def test_batches_over_the_cap_are_refused(api: TestClient[Litestar], billing_app: Litestar) -> None:
    cap = rails(billing_app).settings.billing.max_batch_events
    events = [{"transaction_id": f"e{i}", "code": "test.calls"} for i in range(cap + 1)]
    response = api.post("/api/billing/events", json=batch(*events))
    assert response.status_code == 413
    assert f"at most {cap}" in response.json()["detail"]
    assert api.post("/api/billing/events", json={"events": []}).status_code == 400


def test_invoices_are_listed_to_their_tenant_only(
    api: TestClient[Litestar], billing_app: Litestar, tenant_a: SeededTenant, tenant_b: SeededTenant
) -> None:
    settings = rails(billing_app).settings
    asyncio.run(put_plans(settings, LIMITED))
    september = datetime(2026, 9, 1, tzinfo=UTC)
    asyncio.run(history(settings, tenant_a.tenant_id, ("limited", september)))
    calls = [
        {
            "transaction_id": f"s{i}",
            "code": "test.calls",
            "timestamp": f"2026-09-0{i + 1}T10:00:00Z",
        }
        for i in range(3)
    ]
    assert api.post("/api/billing/events", json=batch(*calls)).json()["recorded"] == 3

    async def close() -> str:
        async with session_for(settings, tenant_a.tenant_id) as session:
            invoice = await close_tenant_period(
                session, tenant_a.tenant_id, september, billing_context(settings)
            )
            assert invoice is not None
            return str(invoice.id)

    invoice_id = asyncio.run(close())
    listed = api.get("/api/billing/invoices").json()
    assert [(i["id"], i["total"], i["status"], i["lines"]) for i in listed] == [
        (invoice_id, 30, "finalized", [])
    ]
    one = api.get(f"/api/billing/invoices/{invoice_id}").json()
    assert [(li["meter"], li["quantity"], li["amount"]) for li in one["lines"]] == [
        ("test.calls", "3", 30)
    ]
    late = batch(
        {"transaction_id": "late", "code": "test.calls", "timestamp": "2026-09-20T10:00:00Z"}
    )
    assert (
        "invoiced already"
        in api.post("/api/billing/events", json=late).json()["results"][0]["error"]
    )
    as_b = {"Authorization": f"Bearer {tenant_b.api_key}"}
    assert api.get(f"/api/billing/invoices/{invoice_id}", headers=as_b).status_code == 404
    assert api.get("/api/billing/invoices", headers=as_b).json() == []


def test_a_missing_feature_answers_402(api: TestClient[Litestar], billing_app: Litestar) -> None:
    refused = api.get("/api/test-export")
    assert refused.status_code == 402
    assert refused.json()["extra"] == {"entitlement": "test.export"}
    asyncio.run(put_plans(rails(billing_app).settings, LIMITED))
    assert api.put("/api/billing/subscription", json={"plan": "limited"}).status_code == 200
    assert api.get("/api/test-export").status_code == 200


@pytest.mark.postgres
async def test_concurrent_batches_on_postgres_count_once_and_roll_up_exactly(
    data_dir: Path, postgres_url: str
) -> None:
    settings = make_settings(
        data_dir, {"BACKPLANE_DATABASE_URL": postgres_url, "BACKPLANE_DB__POOL_SIZE": "10"}
    )
    plugins = load_plugins(settings)
    await asyncio.to_thread(migrations.upgrade, plugins)
    tenant = seed_tenant(plugins, "acme")
    app = create_app(settings, plugins=plugins)
    rails(app).meters.update(METERS)
    await put_plans(settings, LIMITED)
    async with AsyncTestClient(app, timeout=60) as client:
        client.headers.update(tenant.headers)
        models = ["a", "b", "c"]
        body = batch(
            *[
                {
                    "transaction_id": f"k{i}",
                    "code": "test.tokens",
                    "properties": {"tokens": i, "model": models[i % 3]},
                }
                for i in range(300)
            ]
        )
        answers = await asyncio.gather(
            *[client.post("/api/billing/events", json=body) for _ in range(6)]
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert sum(a.json()["recorded"] for a in answers) == 300
        put = await client.put("/api/billing/subscription", json={"plan": "limited"})
        assert put.status_code == 200
        calls = [
            client.post(
                "/api/billing/events",
                json=batch(
                    *[{"transaction_id": f"c{j}-{i}", "code": "test.calls"} for i in range(3)]
                ),
            )
            for j in range(10)
        ]
        results = [r.json() for r in await asyncio.gather(*calls)]
        assert (
            sum(r["recorded"] for r in results) == 5
        )  # hard limit 5, across 10 concurrent batches
        usage = {m["meter"]: m for m in (await client.get("/api/billing/usage")).json()["meters"]}
    assert usage["test.tokens"]["value"] == sum(range(300))
    assert usage["test.calls"]["value"] == 5
    async with session_for(settings, tenant.tenant_id) as session:
        rolled = await session.scalar(
            select(func.sum(UsageRollup.count)).where(UsageRollup.meter == "test.tokens")
        )
        raw = await session.scalar(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.meter == "test.tokens")
        )
    assert rolled == raw == 300


async def test_the_recorder_notifies_a_soft_limit_once_and_keeps_counting(
    migrated: Any, tenant_a: SeededTenant
) -> None:
    from backplane.billing.models import Entitlement
    from backplane.billing.usage import UsageRecorder

    settings = migrated.settings
    async with session_for(settings, None, "test sets a soft limit") as session:
        session.add(
            Entitlement(tenant_id=tenant_a.tenant_id, meter="test.calls", limit=2, hard=False)
        )
    results = []
    for i in range(4):
        async with session_for(settings, tenant_a.tenant_id) as session:
            results.append(
                await UsageRecorder(session, METERS, billing_events(settings)).record(
                    "test.calls", transaction_id=f"r{i}"
                )
            )
    assert [(r.recorded, r.used, r.limit) for r in results] == [
        (True, 1.0, 2.0),
        (True, 2.0, 2.0),
        (True, 3.0, 2.0),
        (True, 4.0, 2.0),
    ]
    async with session_for(settings, tenant_a.tenant_id) as session:
        rows = (
            await session.scalars(select(WebhookEvent).where(WebhookEvent.type == "quota.reached"))
        ).all()
    assert len(rows) == 1
    assert '"used":2.0' in rows[0].payload
    assert '"hard":false' in rows[0].payload


def test_tenants_created_through_the_api_start_on_the_default_plan(
    client: TestClient[Litestar], tenant_a: SeededTenant
) -> None:
    from tests.identity_helpers import PASSWORD

    login = client.post("/api/auth/login", json={"email": tenant_a.email, "password": PASSWORD})
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    made = client.post("/api/tenants", json={"slug": "second"}, headers=token)
    assert made.status_code == 201, made.text
    switched = client.post("/api/auth/switch-tenant", json={"tenant": "second"}, headers=token)
    as_second = {"Authorization": f"Bearer {switched.json()['access_token']}"}

    async def plans() -> list[str]:
        from backplane.billing.plan_models import Plan, Subscription

        async with session_for(rails(client.app).settings, None, "test reads plans") as session:
            rows = await session.execute(
                select(Plan.code)
                .join(Subscription, Subscription.plan_id == Plan.id)
                .where(Subscription.tenant_id == uuid.UUID(made.json()["id"]))
            )
            return [code for (code,) in rows]

    assert asyncio.run(plans()) == ["free"]  # written with the tenant, not on first read
    shown = client.get("/api/billing/subscription", headers=as_second)
    assert shown.json()["plan"]["code"] == "free"


@pytest.mark.parametrize(("default", "expected"), [("team", ["team"]), ("", [])])
def test_the_default_plan_is_a_setting(data_dir: Path, default: str, expected: list[str]) -> None:
    settings = make_settings(
        data_dir, {"BACKPLANE_PLUGINS": "", "BACKPLANE_BILLING__DEFAULT_PLAN": default}
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    team = {"code": "team", "name": "Team", "limits": [{"meter": "test.calls", "limit": 7}]}
    asyncio.run(put_plans(settings, team))
    tenant = seed_tenant(plugins, "acme")

    async def state() -> tuple[list[str], dict[str, float]]:
        from backplane.billing.models import Entitlement
        from backplane.billing.plan_models import Plan, Subscription

        async with session_for(settings, tenant.tenant_id) as session:
            rows = await session.execute(
                select(Plan.code).join(Subscription, Subscription.plan_id == Plan.id)
            )
            limits = {e.meter: e.limit for e in await session.scalars(select(Entitlement))}
            return [code for (code,) in rows], limits

    codes, limits = asyncio.run(state())
    assert codes == expected
    assert limits == ({"test.calls": 7.0} if expected else {})
