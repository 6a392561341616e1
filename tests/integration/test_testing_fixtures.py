"""The plan, quota, usage, task, role and PostgreSQL helpers of ``backplane.testing``, used as a
plugin author would: through the kitchen_sink sample's routes and meter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import get

from backplane import requires_entitlement
from backplane.testing import (
    CHEAP_PASSWORD_HASHING,
    SeededTenant,
    audit_trail,
    put_on_plan,
    run_in_tenant,
    run_tasks,
    seed_tenant,
    set_quota,
    usage_of,
)

NOTES = "/api/kitchen_sink/notes"
JOBS = "/api/kitchen_sink/jobs"
METER = "kitchen_sink.notes"


@get("/api/kitchen_sink_test/export", guards=[requires_entitlement("export")], sync_to_thread=False)
def export() -> dict[str, str]:
    return {"exported": "yes"}


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_TASKS__MIN_BACKOFF_MS": "10",
        "BACKPLANE_TASKS__MAX_BACKOFF_MS": "50",
        **CHEAP_PASSWORD_HASHING,
    }


@pytest.fixture
def backplane_app(backplane_app: Any) -> Any:
    """The app with a route that only plans with the ``export`` feature may use."""
    backplane_app.register(export)
    return backplane_app


def notes_posted(client: Any, count: int) -> list[int]:
    return [client.post(NOTES, json={"body": f"n{n}"}).status_code for n in range(count)]


def test_hard_quota_refuses_and_usage_of_reads_the_period(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    assert usage_of(backplane_client, backplane_tenant, METER) == 0
    set_quota(backplane_client, backplane_tenant, METER, 2)
    assert notes_posted(backplane_client, 3) == [201, 201, 429]
    assert usage_of(backplane_client, backplane_tenant.slug, METER) == 2


def test_soft_quota_records_past_the_limit(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    set_quota(backplane_client.app, backplane_tenant, METER, 1, hard=False)
    assert notes_posted(backplane_client, 2) == [201, 201]
    assert usage_of(backplane_client, backplane_tenant, METER) == 2
    usage = backplane_client.get("/api/billing/usage").json()["meters"]
    assert [(m["limit"], m["hard"]) for m in usage if m["meter"] == METER] == [(1, False)]


def test_quota_helpers_refuse_bad_input(backplane_app: Any, backplane_tenant: SeededTenant) -> None:
    with pytest.raises(ValueError, match=r"no meter 'kitchen_sink\.nope' \(known: .*notes"):
        set_quota(backplane_app, backplane_tenant, "kitchen_sink.nope", 1)
    with pytest.raises(ValueError, match="at least 0"):
        set_quota(backplane_app, backplane_tenant, METER, -1)
    with pytest.raises(ValueError, match="no meter 'nope'"):
        usage_of(backplane_app, backplane_tenant, "nope")
    with pytest.raises(ValueError, match="no tenant with slug 'ghost'"):
        usage_of(backplane_app, "ghost", METER)


def test_a_plan_gives_features_and_limits_to_one_tenant(
    backplane_client: Any, backplane_tenant: SeededTenant, backplane_plugins: Any
) -> None:
    other = seed_tenant(backplane_client, "other-tenant")
    assert backplane_client.get("/api/kitchen_sink_test/export").status_code == 402
    put_on_plan(backplane_client, backplane_tenant, "pro", features=["export"], limits={METER: 1})
    assert backplane_client.get("/api/kitchen_sink_test/export").json() == {"exported": "yes"}
    assert notes_posted(backplane_client, 2) == [201, 429]
    current = backplane_client.get("/api/billing/subscription").json()["plan"]
    assert (current["code"], current["features"]) == ("pro", ["export"])
    # The other tenant keeps the default plan.
    refused = backplane_client.get("/api/kitchen_sink_test/export", headers=other.headers)
    assert refused.status_code == 402
    assert usage_of(backplane_plugins, other, METER) == 0


def test_run_tasks_runs_what_requests_enqueued(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    for label in ("a", "b"):
        created = backplane_client.post(JOBS, json={"label": label, "note": True})
        assert created.status_code == 201, created.text
    run_tasks(backplane_client)
    assert sorted(n["body"] for n in backplane_client.get(NOTES).json()) == ["a", "b"]
    assert usage_of(backplane_client, backplane_tenant, METER) == 2


def test_run_tasks_names_what_is_left_and_what_failed(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    set_quota(backplane_client, backplane_tenant, METER, 0)  # write_note is refused: it fails
    backplane_client.post(JOBS, json={"label": "refused", "note": True})
    with pytest.raises(AssertionError, match=r"tasks failed: kitchen_sink\.write_note failed"):
        run_tasks(backplane_client)
    backplane_client.post(JOBS, json={"label": "slow", "seconds": 5})
    with pytest.raises(AssertionError, match=r"not run after 0\.3 s: kitchen_sink\.slow_log"):
        run_tasks(backplane_client, timeout=0.3)
    run_tasks(backplane_client, allow_failures=True)  # the earlier failure is not reported again


def test_run_tasks_needs_a_started_app(backplane_app: Any) -> None:
    with pytest.raises(RuntimeError, match="needs the app started"):
        run_tasks(backplane_app)


def test_clients_per_role_share_the_tenant(
    backplane_client: Any, backplane_client_as: Any, backplane_tenant: SeededTenant
) -> None:
    viewer, member = backplane_client_as("viewer"), backplane_client_as("member")
    assert backplane_client_as("viewer") is viewer
    assert member.post(NOTES, json={"body": "by a member"}).status_code == 201
    refused = viewer.post(NOTES, json={"body": "by a viewer"})
    assert refused.status_code == 403
    assert [n["body"] for n in viewer.get(NOTES).json()] == ["by a member"]
    assert [n["body"] for n in backplane_client.get(NOTES).json()] == ["by a member"]
    for role in ("owner", "admin", "member", "viewer"):
        me = backplane_client_as(role).get("/api/me").json()
        assert (me["tenant_id"], me["role"]) == (str(backplane_tenant.tenant_id), role)
    with pytest.raises(ValueError, match="role must be one of"):
        backplane_client_as("root")


def test_postgres_app_skips_without_a_server(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.delenv("BACKPLANE_TEST_POSTGRES_URL", raising=False)
    monkeypatch.delenv("BACKPLANE_TEST_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set BACKPLANE_TEST_POSTGRES_URL to an admin"):
        request.getfixturevalue("backplane_postgres_app")


@pytest.mark.postgres
class TestOnPostgres:
    @pytest.fixture
    def backplane_postgres_url(self, postgres_server: str) -> str:
        """The kernel's own suite finds its server as ``tests/conftest.py`` does."""
        return postgres_server

    def test_the_helpers_work_on_postgres(self, backplane_postgres_app: Any) -> None:
        from litestar.testing import TestClient

        tenant = seed_tenant(backplane_postgres_app, "pg-tenant")
        other = seed_tenant(backplane_postgres_app, "pg-other")
        with TestClient(backplane_postgres_app) as client:
            client.headers.update(tenant.headers)
            assert client.app.state["backplane"].database.engine.dialect.name == "postgresql"
            set_quota(client, tenant, METER, 1)
            assert notes_posted(client, 2) == [201, 429]
            client.post(JOBS, json={"label": "from a task", "note": True}, headers=other.headers)
            run_tasks(client)
            assert usage_of(client, tenant, METER) == 1
            assert usage_of(client, other, METER) == 1
            assert client.get(NOTES).json()[0]["body"] == "n0"  # row-level security holds
            assert len(client.get(NOTES).json()) == 1


def test_run_in_tenant_binds_the_plugin_view_and_commits_or_rolls_back(
    backplane_client: Any, backplane_tenant: SeededTenant
) -> None:
    async def record(kernel: Any) -> tuple[str, Any]:
        await kernel.audit.record("kitchen_sink.tested", target=("note", "1"))
        return kernel.plugin, kernel.tenant_id

    seen = run_in_tenant(backplane_client, backplane_tenant, record, plugin="kitchen_sink")
    assert seen == ("kitchen_sink", backplane_tenant.tenant_id)
    assert len(audit_trail(backplane_client, backplane_tenant, "kitchen_sink.tested")) == 1

    async def fail(kernel: Any) -> None:
        await kernel.audit.record("kitchen_sink.tested", target=("note", "2"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_in_tenant(backplane_client, backplane_tenant.slug, fail, plugin="kitchen_sink")
    assert len(audit_trail(backplane_client, backplane_tenant, "kitchen_sink.tested")) == 1
