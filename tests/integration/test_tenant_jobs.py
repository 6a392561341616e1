"""Plugin code across tenants: per-tenant scheduled jobs (the kernel fans each period out to one
task per tenant that has the plugin on), operator commands with an audited all-tenants session,
and plugin settings errors that name what the user set."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from backplane.db.tenancy import bind_tenant
from backplane.kernel import Kernel, Rails
from backplane.loading import load_plugins
from backplane.plugins import PluginSet, SkipReason
from backplane.tasks.models import DONE, FAILED, OutboxMessage
from backplane.tasks.runtime import TaskRuntime, _task_items
from backplane.testing import seed_tenant
from tests.app_helpers import task_runtime
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.integration.test_tasks import FAST_TASKS
from tests.waiting import wait_for

COUNT_NOTES = "kitchen_sink.count_notes"


async def add_notes(runtime: TaskRuntime, tenant_id: uuid.UUID, *bodies: str) -> None:
    from bp_sample_kitchen_sink.models import Note

    async with runtime.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant_id)
        session.add_all(Note(body=body) for body in bodies)


async def switch_off(runtime: TaskRuntime, tenant_id: uuid.UUID, plugin: str) -> None:
    from backplane.identity.models import TenantPlugin

    async with runtime.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant_id)
        session.add(TenantPlugin(tenant_id=tenant_id, plugin=plugin, enabled=False))


async def count_runs(runtime: TaskRuntime) -> dict[uuid.UUID | None, tuple[str, int]]:
    """Each ``count_notes`` task by its tenant: (status, attempts)."""
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(
                OutboxMessage.context_tenant_id, OutboxMessage.status, OutboxMessage.attempts
            ).where(OutboxMessage.actor == COUNT_NOTES)
        )
        return {tenant_id: (status, attempts) for tenant_id, status, attempts in rows}


@pytest.fixture
def plugins(data_dir: Path, db_env: dict[str, str]) -> PluginSet:
    """Every plugin, migrated, with fast retries, on SQLite and on PostgreSQL (the application
    role, under row-level security)."""
    from tests.db_helpers import migrate

    found = load_plugins(make_settings(data_dir, {**FAST_TASKS, **db_env}))
    migrate(found)
    return found


@pytest.fixture
def runtime(plugins: PluginSet) -> Iterator[TaskRuntime]:
    """A worker's task runtime on the embedded broker (its worker is the test's); the test
    ticks its scheduler and relay."""
    started = task_runtime(plugins)
    started.start(relay=False, scheduler=False)
    try:
        yield started
    finally:
        started.stop()


def run_everything(runtime: TaskRuntime) -> None:
    """Hand the outbox to the broker and let a worker run until every ``count_notes`` task has
    settled (retries included)."""
    assert runtime.run(runtime.relay_once()) > 0
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        wait_for(
            lambda: all(
                status in (DONE, FAILED) for status, _ in runtime.run(count_runs(runtime)).values()
            ),
            message="the count_notes tasks to settle",
        )
    finally:
        worker.stop()


def test_a_per_tenant_job_runs_once_a_period_in_each_tenant_that_has_the_plugin(
    plugins: PluginSet, runtime: TaskRuntime
) -> None:
    """``count_notes`` (``per_tenant=True``): each period, one task per tenant with kitchen_sink
    on, each seeing that tenant's notes only (row-level security on PostgreSQL); a tenant that
    switched the plugin off gets none; a tenant whose run fails is retried like any task and
    fails alone. A second scheduler, or a second tick, in the same period adds nothing."""
    from bp_sample_kitchen_sink.tasks import BREAKS_THE_COUNT, COUNTS

    acme, globex, initech, umbrella = (
        seed_tenant(plugins, slug) for slug in ("acme", "globex", "initech", "umbrella")
    )
    runtime.run(add_notes(runtime, acme.tenant_id, "one", "two"))
    runtime.run(add_notes(runtime, globex.tenant_id, "three"))
    runtime.run(add_notes(runtime, initech.tenant_id, "four", "five", "six"))
    runtime.run(add_notes(runtime, umbrella.tenant_id, BREAKS_THE_COUNT))
    runtime.run(switch_off(runtime, initech.tenant_id, "kitchen_sink"))
    COUNTS.clear()

    now = datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    assert COUNT_NOTES in runtime.run(runtime.schedule_once(now))
    other = task_runtime(plugins)  # another worker's scheduler, same period
    other.start(relay=False, scheduler=False)
    try:
        assert COUNT_NOTES not in other.run(other.schedule_once(now + timedelta(minutes=1)))
    finally:
        other.stop()
    assert set(runtime.run(count_runs(runtime))) == {
        acme.tenant_id,
        globex.tenant_id,
        umbrella.tenant_id,
    }

    run_everything(runtime)
    assert sorted(COUNTS) == sorted([(acme.tenant_id, 2), (globex.tenant_id, 1)])
    runs = runtime.run(count_runs(runtime))
    assert runs[acme.tenant_id] == (DONE, 1)
    assert runs[globex.tenant_id] == (DONE, 1)
    assert runs[umbrella.tenant_id] == (FAILED, 4)  # the first run and max_retries=3

    COUNTS.clear()
    assert COUNT_NOTES in runtime.run(runtime.schedule_once(now + timedelta(minutes=5)))
    run_everything(runtime)
    assert sorted(COUNTS) == sorted([(acme.tenant_id, 2), (globex.tenant_id, 1)])


def test_per_tenant_needs_a_schedule() -> None:
    async def job(kernel: Any) -> None:
        pass

    with pytest.raises(ValueError, match="job: per_tenant=True needs a schedule"):
        _task_items("kitchen_sink", job, per_tenant=True)
    [task] = _task_items("kitchen_sink", job, schedule="0 * * * *", per_tenant=True)
    assert task.per_tenant


def test_a_command_acts_across_tenants_through_an_audited_session(
    plugins: PluginSet, data_dir: Path, db_env: dict[str, str]
) -> None:
    """``kitchen-sink-census`` counts every tenant's notes in ``kernel.all_tenants(reason)``,
    lists the tenants that have the plugin on with ``tenant_ids()``, and greets with its
    validated ``plugin_settings`` (set through the environment)."""
    acme, globex, initech = (seed_tenant(plugins, s) for s in ("acme", "globex", "initech"))
    runtime = task_runtime(plugins, StubBroker())
    runtime.start(relay=False, scheduler=False)
    try:
        runtime.run(add_notes(runtime, acme.tenant_id, "one", "two"))
        runtime.run(add_notes(runtime, initech.tenant_id, "three"))
        runtime.run(switch_off(runtime, initech.tenant_id, "kitchen_sink"))
    finally:
        runtime.stop()
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        **db_env,
        "BACKPLANE_PLUGIN__KITCHEN_SINK__GREETING": "hi",
    }
    result = run_cli("kitchen-sink-census", env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        [f"hi: {acme.tenant_id} has 2 notes", f"hi: {globex.tenant_id} has 0 notes"]
    )


def test_all_tenants_is_audited_and_for_commands_only(
    plugins: PluginSet, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason goes to the audit log; an empty one is refused; a view that is not a
    command's (a handler's, a task's, a hook's) cannot open the session at all."""
    seed_tenant(plugins, "acme")

    async def go() -> None:
        rails = Rails.build(plugins.settings, plugins)
        try:
            command = Kernel(rails, "kitchen_sink", operator=True)
            with caplog.at_level(logging.INFO, logger="backplane.audit"):
                async with command.all_tenants("weekly report") as everyone:
                    assert len(await everyone.tenant_ids()) == 1
            assert "operator command of kitchen_sink: weekly report" in caplog.text
            with pytest.raises(ValueError, match="needs a reason"):
                async with command.all_tenants("  "):
                    pass
            with pytest.raises(PermissionError, match="on the view of"):
                await command.tenant_ids()
            for view in (rails.kernel().for_plugin("kitchen_sink"), rails.kernel()):
                with pytest.raises(PermissionError, match="operator commands"):
                    async with view.all_tenants("sneaky"):
                        pass
        finally:
            await rails.close()

    asyncio.run(go())


@pytest.mark.parametrize("where", ["environment", "file"])
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("greetng", "hi", "unknown setting 'greetng'"),
        ("max_notes", "many", "Expected `int`, got `str`"),
        ("max_notes", "0", "max_notes must be at least 1, not 0"),  # the struct's own check
    ],
)
def test_a_bad_plugin_setting_names_what_the_user_set(
    data_dir: Path, where: str, field: str, value: str, problem: str
) -> None:
    """A plugin's settings error names the variable the user set, or the file and key, never
    only the section; for every kind of problem."""
    if where == "environment":
        env = {f"BACKPLANE_PLUGIN__KITCHEN_SINK__{field.upper()}": value}
        named = f"BACKPLANE_PLUGIN__KITCHEN_SINK__{field.upper()}"
    else:
        config = data_dir.parent / "backplane.toml"
        toml_value = value if value.isdigit() else f'"{value}"'
        config.write_text(f"[plugins.kitchen_sink]\n{field} = {toml_value}\n")
        env = {"BACKPLANE_CONFIG": str(config)}
        named = f"{config}: plugins.kitchen_sink.{field}"
    record = load_plugins(make_settings(data_dir, env)).records["kitchen_sink"]
    assert record.reason_code is SkipReason.INVALID_SETTINGS
    assert (record.reason or "").startswith(f"{named}: {problem}")


def test_a_period_started_while_a_tenant_is_deleted_leaves_it_out(
    plugins: PluginSet, runtime: TaskRuntime
) -> None:
    """A per-tenant period that begins while a tenant's deletion holds its row: the other
    tenants get their task, the deleted one none (no task left naming a tenant that is gone,
    and no period lost to a refused insert). PostgreSQL: the scheduler's share lock waits for
    the deletion; SQLite: its stale read cannot write, and the next tick starts the period."""
    import threading

    from backplane.db.locks import lock_row
    from backplane.identity.models import Tenant
    from tests.db_helpers import admin_session

    acme, globex = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    locked, deleting_done = threading.Event(), threading.Event()

    async def delete_acme_slowly() -> None:
        async with admin_session(plugins.settings) as session, session.begin():
            await lock_row(session, Tenant, acme.tenant_id)
            locked.set()
            await asyncio.sleep(1.5)  # the scheduler's tick starts meanwhile
            await session.execute(Tenant.__table__.delete().where(Tenant.id == acme.tenant_id))

    def deleter() -> None:
        try:
            asyncio.run(delete_acme_slowly())
        finally:
            deleting_done.set()

    thread = threading.Thread(target=deleter)
    thread.start()
    assert locked.wait(10)
    now = datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    started = runtime.run(runtime.schedule_once(now))
    thread.join()
    assert deleting_done.is_set()
    if COUNT_NOTES not in started:  # SQLite: the tick that overlapped could not write
        started = runtime.run(runtime.schedule_once(now))
    assert COUNT_NOTES in started
    assert set(runtime.run(count_runs(runtime))) == {globex.tenant_id}


def test_a_period_whose_task_rows_are_refused_is_tried_again_not_lost(
    plugins: PluginSet, runtime: TaskRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integrity error that is not another scheduler's lease (here a task for a tenant that
    does not exist, refused by the outbox's foreign key) leaves the period open: the next tick
    starts it."""
    from backplane.tasks import runtime as runtime_module

    globex = seed_tenant(plugins, "globex")
    real = runtime_module.tenants_running

    async def with_a_ghost(session: Any, plugin: str) -> list[uuid.UUID]:
        return [*await real(session, plugin), uuid.uuid4()]

    now = datetime(2026, 11, 25, 12, 1, tzinfo=UTC)
    monkeypatch.setattr(runtime_module, "tenants_running", with_a_ghost)
    assert COUNT_NOTES not in runtime.run(runtime.schedule_once(now))
    monkeypatch.setattr(runtime_module, "tenants_running", real)
    assert COUNT_NOTES in runtime.run(runtime.schedule_once(now))
    assert set(runtime.run(count_runs(runtime))) == {globex.tenant_id}
