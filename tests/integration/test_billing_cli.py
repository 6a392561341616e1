"""Operators: plans from a TOML file, subscriptions, closing periods (CLI and scheduled task)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from backplane.billing.jobs import STATE_KEY, close_ended_period
from backplane.billing.plan_models import Invoice
from backplane.db.engine import create_engine, create_sessionmaker
from backplane.db.models import KernelState
from backplane.plugins import PluginSet
from backplane.testing import SeededTenant
from tests.app_helpers import kernel_on
from tests.billing_helpers import paid_since_september, session_for
from tests.cli import run_cli

PLAN_TOML = """
[[plans]]
code = "team"
name = "Team"
fee = 2900
self_service = true
features = ["kitchen_sink.export"]
static = { seats = 10 }
limits = [{ meter = "kitchen_sink.notes", limit = 100 }]

[[plans.charges]]
meter = "kitchen_sink.notes"
model = "graduated"
tiers = [{ up_to = 10, unit_price = "0" }, { unit_price = "2.5" }]  # TOML has no null
"""


def test_plans_subscriptions_and_close_period_commands(tmp_path: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(tmp_path / "var"), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    made = run_cli("tenants", "create", "acme", "--owner-email", "a@acme.org", env=env)
    assert made.returncode == 0, made.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN_TOML.replace("up_to = 10", "up_to = 10, flat_fee = -1"))
    refused = run_cli("plans", "create", str(bad), env=env)
    assert refused.returncode == 1
    assert "flat_fee" in refused.stderr
    unknown_meter = tmp_path / "unknown.json"
    unknown_meter.write_text(
        json.dumps({"code": "x", "name": "X", "limits": [{"meter": "no.pe", "limit": 1}]})
    )
    refused = run_cli("plans", "create", str(unknown_meter), env=env)
    assert refused.returncode == 1
    assert "unknown meter 'no.pe'" in refused.stderr
    good = tmp_path / "team.toml"
    good.write_text(PLAN_TOML)
    stored = run_cli("plans", "create", str(good), env=env)
    assert stored.returncode == 0, stored.stderr
    assert "plan team stored (0 subscribed tenant(s) updated)" in stored.stdout

    listed = json.loads(run_cli("plans", "list", "--json", env=env).stdout)
    assert [p["code"] for p in listed] == ["free", "team"]  # free: made for acme on creation
    shown = json.loads(run_cli("plans", "show", "team", env=env).stdout)
    assert shown["charges"] == [
        {
            "meter": "kitchen_sink.notes",
            "model": "graduated",
            "tiers": [{"up_to": 10.0}, {"unit_price": "2.5"}],  # defaults are left out
        }
    ]
    assert (shown["fee"], shown["static"], shown["features"]) == (
        2900,
        {"seats": 10.0},
        ["kitchen_sink.export"],
    )
    assert shown["limits"] == [{"meter": "kitchen_sink.notes", "limit": 100.0, "hard": True}]

    moved = run_cli("subscriptions", "set", "--tenant", "acme", "--plan", "team", env=env)
    assert moved.returncode == 0, moved.stderr
    segments = json.loads(
        run_cli("subscriptions", "show", "--tenant", "acme", "--json", env=env).stdout
    )
    assert [(s["plan"], s["ended_at"] is None) for s in segments] == [
        ("free", False),
        ("team", True),
    ]
    unknown = run_cli("subscriptions", "set", "--tenant", "acme", "--plan", "nope", env=env)
    assert unknown.returncode == 1
    assert "no plan 'nope'" in unknown.stderr

    now = datetime.now(UTC)
    current = run_cli("billing", "close-period", "--period", f"{now:%Y-%m}", env=env)
    assert current.returncode == 2
    assert "has not ended yet" in current.stderr
    closed = run_cli("billing", "close-period", "--period", "2026-01", "--tenant", "acme", env=env)
    assert closed.returncode == 0, closed.stderr
    assert "0 invoice(s) finalized, 0 failure(s)" in closed.stdout  # acme did not exist then
    assert run_cli("billing", "close-period", "--period", "2026-13", env=env).returncode == 2


async def test_the_scheduled_job_closes_the_previous_period_once_after_the_grace(
    migrated: PluginSet, tenant_a: SeededTenant
) -> None:
    settings = migrated.settings
    await paid_since_september(settings, tenant_a.tenant_id)

    async def run(now: datetime) -> int:
        engine = create_engine(settings)
        try:
            sessions = create_sessionmaker(engine)
            async with sessions() as session, session.begin(), kernel_on(migrated, session) as k:
                return await close_ended_period(k, now=now)
        finally:
            await engine.dispose()

    assert await run(datetime(2026, 10, 1, 0, 30, tzinfo=UTC)) == 0  # inside the grace hour
    assert await run(datetime(2026, 10, 1, 1, 23, tzinfo=UTC)) == 1
    assert await run(datetime(2026, 10, 1, 2, 23, tzinfo=UTC)) == 0  # remembered
    async with session_for(settings, tenant_a.tenant_id) as session:
        invoices = (await session.scalars(select(Invoice))).all()
        state = await session.get(KernelState, STATE_KEY)
    assert [(i.total, i.status) for i in invoices] == [(1000, "finalized")]
    assert state is not None
    assert state.value == "2026-09"
