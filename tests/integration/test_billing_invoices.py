"""Acceptance 3: every aggregation and every charge model, hand-computed, across a plan change.

September 2026 (30 days = 2,592,000 s). The tenant is on ``basic`` until 16 Sep 12:30 UTC and on
``pro`` after, so the invoice has two segments; 12:30 is inside an hour, so the edges of both
segments are read from raw events and the rest from roll-ups.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backplane.billing.invoices import close_tenant_period
from backplane.billing.plan_models import Invoice, InvoiceLine
from backplane.billing.usage import UsageRecorder
from backplane.billing.webhooks.models import WebhookEvent
from backplane.db import migrations
from backplane.loading import load_plugins
from backplane.settings import Settings
from backplane.testing import SeededTenant, seed_tenant
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

BASIC = {
    "code": "basic",
    "name": "Basic",
    "fee": 3000,
    "charges": [
        {"meter": "test.calls", "model": "standard", "unit_price": "0.5"},
        {"meter": "test.tokens", "model": "package", "package_size": 1000, "package_price": 200},
        {
            "meter": "test.peak",
            "model": "graduated",
            "tiers": [
                {"up_to": 10, "unit_price": "100"},
                {"up_to": 20, "unit_price": "50", "flat_fee": 500},
                {"up_to": None, "unit_price": "10"},
            ],
        },
        {
            "meter": "test.users",
            "model": "volume",
            "tiers": [
                {"up_to": 2, "unit_price": "1000"},
                {"up_to": None, "unit_price": "800", "flat_fee": 100},
            ],
        },
        {"meter": "test.storage", "model": "standard", "unit_price": "12.345"},
    ],
}
PRO = {
    "code": "pro",
    "name": "Pro",
    "fee": 9000,
    "self_service": True,
    "charges": [
        {
            "meter": "test.calls",
            "model": "graduated",
            "tiers": [{"up_to": 2, "unit_price": "0"}, {"up_to": None, "unit_price": "1.25"}],
        },
        {"meter": "test.users", "model": "standard", "unit_price": "300"},
        {
            "meter": "test.storage",
            "model": "volume",
            "tiers": [
                {"up_to": 5, "unit_price": "20"},
                {"up_to": None, "unit_price": "15", "flat_fee": 50},
            ],
        },
    ],
}
CHANGE = datetime(2026, 9, 16, 12, 30, tzinfo=UTC)


def at(day: int, hour: int = 10, minute: int = 0, month: int = 9) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# (meter, value, properties, when)
EVENTS: list[tuple[str, float, dict[str, Any], datetime]] = [
    # outside September: never billed
    ("test.calls", 1, {}, datetime(2026, 8, 31, 23, 59, tzinfo=UTC)),
    ("test.calls", 1, {}, datetime(2026, 10, 1, 0, 0, tzinfo=UTC)),
    # basic segment: 7 calls, one in the edge hour before the change
    *[("test.calls", 1, {}, at(d)) for d in (1, 2, 3, 5, 8, 13)],
    ("test.calls", 1, {}, at(16, 12, 0)),
    ("test.tokens", 0, {"tokens": 300, "model": "a"}, at(2)),
    ("test.tokens", 0, {"tokens": 800, "model": "b"}, at(4)),
    ("test.tokens", 0, {"tokens": 450, "model": "a"}, at(16, 12, 15)),
    ("test.peak", 5, {}, at(3)),
    ("test.peak", 17, {}, at(6)),
    ("test.peak", 12, {}, at(16, 12, 20)),
    ("test.users", 1, {"user": "u1"}, at(1)),
    ("test.users", 1, {"user": "u2"}, at(2)),
    ("test.users", 1, {"user": "u1"}, at(9)),
    ("test.users", 1, {"user": "u3"}, at(16, 12, 29)),
    ("test.storage", 10, {}, at(2)),
    ("test.storage", 4.5, {}, at(10)),
    ("test.storage", 7, {}, at(16, 12, 29)),
    # pro segment
    ("test.calls", 1, {}, at(16, 12, 45)),
    *[("test.calls", 1, {}, at(d)) for d in (18, 22, 30)],
    ("test.tokens", 0, {"tokens": 999, "model": "a"}, at(20)),  # not charged on pro
    ("test.users", 1, {"user": "u1"}, at(17)),
    ("test.users", 1, {"user": "u4"}, at(16, 12, 31)),
    ("test.users", 1, {"user": "u4"}, at(25)),
    ("test.storage", 3, {}, at(20)),
    ("test.storage", 6, {}, at(30, 23, 0)),
]

# (kind, plan, meter, quantity, amount), worked out by hand:
EXPECTED = [
    ("fee", "basic", None, "0.517361", 1552),  # 3000 x 1,341,000 / 2,592,000 = 1552.08
    ("usage", "basic", "test.calls", "7", 4),  # 7 x 0.5 = 3.5 -> 4 (half-up)
    ("usage", "basic", "test.tokens", "1550", 400),  # sum 1550 -> 2 packages x 200
    ("usage", "basic", "test.peak", "17", 1850),  # max 17: 10x100 + 7x50 + 500
    ("usage", "basic", "test.users", "3", 2500),  # u1,u2,u3: volume 3 x 800 + 100
    ("usage", "basic", "test.storage", "7", 86),  # latest 7 x 12.345 = 86.415 -> 86
    ("fee", "pro", None, "0.482639", 4344),  # 9000 x 1,251,000 / 2,592,000 = 4343.75
    ("usage", "pro", "test.calls", "4", 3),  # 2 free + 2 x 1.25 = 2.5 -> 3
    ("usage", "pro", "test.users", "2", 600),  # u1,u4 (per segment): 2 x 300
    ("usage", "pro", "test.storage", "6", 140),  # latest 6: volume 6 x 15 + 50
]
TOTAL = 1552 + 4 + 400 + 1850 + 2500 + 86 + 4344 + 3 + 600 + 140


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def billed(request: pytest.FixtureRequest, data_dir: Path) -> tuple[Settings, SeededTenant]:
    env = {"BACKPLANE_PLUGINS": ""}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    return settings, seed_tenant(plugins, "acme")


async def record_all(settings: Settings, tenant: SeededTenant) -> None:
    async with session_for(settings, tenant.tenant_id) as session:
        recorder = UsageRecorder(session, METERS, billing_events(settings))
        for i, (code, value, properties, when) in enumerate(EVENTS):
            await recorder.record(
                code, value, transaction_id=f"e{i}", properties=properties, occurred_at=when
            )


async def test_invoice_with_every_aggregation_and_charge_model_across_a_plan_change(
    billed: tuple[Settings, SeededTenant],
) -> None:
    settings, tenant = billed
    await put_plans(settings, BASIC, PRO)
    await history(settings, tenant.tenant_id, ("basic", at(1, 0)), ("pro", CHANGE))
    await record_all(settings, tenant)
    context = billing_context(settings)
    september = datetime(2026, 9, 1, tzinfo=UTC)

    async with session_for(settings, tenant.tenant_id) as session:
        invoice = await close_tenant_period(session, tenant.tenant_id, september, context)
        assert invoice is not None
        invoice_id = invoice.id
    async with session_for(settings, tenant.tenant_id) as session:
        again = await close_tenant_period(session, tenant.tenant_id, september, context)
        assert again is not None
        assert again.id == invoice_id

    async with session_for(settings, tenant.tenant_id) as session:
        invoices = (await session.scalars(select(Invoice))).all()
        assert [(i.status, i.total, i.currency) for i in invoices] == [("finalized", TOTAL, "USD")]
        assert invoices[0].provider == "ledger"
        assert invoices[0].provider_reference == invoices[0].number
        lines = (await session.scalars(select(InvoiceLine).order_by(InvoiceLine.position))).all()
        got = [(li.kind, li.plan_code, li.meter, li.quantity, li.amount) for li in lines]
        assert got == EXPECTED
        finalized = await session.scalar(
            select(func.count()).where(WebhookEvent.type == "invoice.finalized")
        )
        assert finalized == 1  # the second close found the invoice and did nothing


async def test_rollups_agree_with_raw_events_for_any_window(
    billed: tuple[Settings, SeededTenant],
) -> None:
    """The hybrid read (roll-ups + raw edges) equals a fold over raw events alone."""
    from backplane.billing.aggregate import WindowUsage, _raw, window_usage

    settings, tenant = billed
    await record_all(settings, tenant)
    windows = [
        (at(1, 0), at(16, 12, 30)),
        (at(16, 12, 30), at(1, 0, month=10)),
        (at(2, 10, 0), at(2, 10, 0)),
        (at(3, 9, 59), at(13, 10, 1)),
        (datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
    ]
    async with session_for(settings, tenant.tenant_id) as session:
        for start, end in windows:
            for meter in METERS.values():
                hybrid = await window_usage(session, tenant.tenant_id, meter, start, end)
                raw = WindowUsage()
                if start < end:
                    await _raw(session, tenant.tenant_id, meter, start, end, raw)
                kind = meter.aggregation
                assert hybrid.total.value(kind) == raw.total.value(kind), (meter.code, start)
                assert {g: f.value(kind) for g, f in hybrid.groups.items()} == {
                    g: f.value(kind) for g, f in raw.groups.items()
                }


async def test_a_tenant_without_a_subscription_in_the_period_gets_no_invoice(
    billed: tuple[Settings, SeededTenant],
) -> None:
    settings, tenant = billed
    async with session_for(settings, tenant.tenant_id) as session:
        none = await close_tenant_period(
            session, tenant.tenant_id, datetime(2020, 1, 1, tzinfo=UTC), billing_context(settings)
        )
    assert none is None


@pytest.mark.postgres
async def test_concurrent_closes_make_one_invoice(data_dir: Path, postgres_url: str) -> None:
    settings = make_settings(
        data_dir, {"BACKPLANE_PLUGINS": "", "BACKPLANE_DATABASE_URL": postgres_url}
    )
    plugins = load_plugins(settings)
    await asyncio.to_thread(migrations.upgrade, plugins)
    tenant = seed_tenant(plugins, "acme")
    await put_plans(settings, BASIC, PRO)
    await history(settings, tenant.tenant_id, ("basic", at(1, 0)), ("pro", CHANGE))
    await record_all(settings, tenant)
    context = billing_context(settings)

    async def close() -> Any:
        async with session_for(settings, tenant.tenant_id) as session:
            invoice = await close_tenant_period(session, tenant.tenant_id, at(1, 0), context)
            return invoice.id if invoice else None

    ids = await asyncio.gather(*[close() for _ in range(5)])
    assert len(set(ids)) == 1
    async with session_for(settings, tenant.tenant_id) as session:
        assert await session.scalar(select(func.count()).select_from(Invoice)) == 1
        assert await session.scalar(select(func.count()).select_from(InvoiceLine)) == len(EXPECTED)
