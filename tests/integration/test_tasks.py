"""Background tasks on the embedded broker: success, retries, failure, time limit, duplicates,
rollback, tenant context and trace propagation, and the per-period scheduler lease."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from backplane.app import create_app
from backplane.db import migrations
from backplane.db.tenancy import bind_tenant
from backplane.plugins import load_plugins
from backplane.tasks.models import DONE, FAILED, PENDING, OutboxMessage, ScheduleRun
from backplane.tasks.runtime import RegisteredTask, TaskRuntime
from backplane.testing import SeededTenant, seed_tenant
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.waiting import wait_for

FAST_TASKS = {
    "BACKPLANE_TASKS__MIN_BACKOFF_MS": "10",
    "BACKPLANE_TASKS__MAX_BACKOFF_MS": "50",
    "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
    "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
    "BACKPLANE_PLUGINS": "kitchen_sink",
}
MARK_AT_ONCE = {"BACKPLANE_TASKS__MARK_DELAY_MS": "0"}
"""For tests that look at a task's row right after its run (PostgreSQL defers the done-mark of
an actor that wrote nothing by default)."""


ADVISORY_LOCKS_HERE = """
    SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""Advisory locks held in this test's database (others', in parallel, are not its business)."""


class World:
    def __init__(
        self, app: Litestar, client: TestClient[Litestar], a: SeededTenant, b: SeededTenant
    ) -> None:
        self.app, self.client, self.a, self.b = app, client, a, b
        self.runtime: TaskRuntime = rails(app).tasks

    def enqueue(self, tenant: SeededTenant, function: str, *args: Any) -> uuid.UUID:
        async def go() -> uuid.UUID:
            async with self.runtime.sessionmaker() as session:
                bind_tenant(session, tenant.tenant_id)
                message_id = await self.runtime.queue_for(session).enqueue(
                    f"kitchen_sink.{function}", *args
                )
                await session.commit()
                return message_id

        return self.runtime.run(go())

    def outbox(self, message_id: uuid.UUID) -> OutboxMessage:
        async def go() -> OutboxMessage:
            async with self.runtime.sessionmaker() as session:
                row = await session.get(OutboxMessage, message_id)
                assert row is not None
                return row

        return self.runtime.run(go())

    def log(self, tenant: SeededTenant) -> list[tuple[str, int]]:
        from bp_sample_kitchen_sink.models import TaskLog

        async def go() -> list[tuple[str, int]]:
            async with self.runtime.sessionmaker() as session:
                bind_tenant(session, tenant.tenant_id)
                rows = await session.execute(
                    select(TaskLog.label, TaskLog.attempt).order_by(TaskLog.id)
                )
                return [(label, attempt) for label, attempt in rows]

        return self.runtime.run(go())


def purge(broker: dramatiq.Broker) -> None:
    """Empty the real broker's queues (and their delay/dead-letter queues) between tests."""
    if hasattr(broker, "channel"):  # RabbitMQ declares queues lazily: declare, then purge
        for queue in list(broker.get_declared_queues()):
            broker.declare_queue(queue, ensure=True)
    broker.flush_all()


def log_label_task(function: Any, *, max_retries: int = 0) -> RegisteredTask:
    """``function`` registered as the sample plugin's ``log_label`` task, to drive the claim
    directly (``runtime._run``) with an actor of the test's own."""
    return RegisteredTask(
        name="kitchen_sink.log_label", plugin="kitchen_sink", function=function,
        queue="kitchen_sink", max_retries=max_retries, time_limit_ms=10_000, schedule=None,
    )  # fmt: skip


def enqueue_log_label(runtime: TaskRuntime, tenant_id: uuid.UUID, *args: Any) -> uuid.UUID:
    """Enqueue ``kitchen_sink.log_label`` for a tenant in a transaction of its own."""

    async def enqueue() -> uuid.UUID:
        async with runtime.sessionmaker() as session:
            bind_tenant(session, tenant_id)
            message_id = await runtime.queue_for(session).enqueue("kitchen_sink.log_label", *args)
            await session.commit()
            return message_id

    return runtime.run(enqueue())


async def fetch_one_as_admin(url: str, query: str, *args: Any) -> Any:
    """One row from a connection of its own (closed after, with any advisory lock it took)."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchrow(query, *args)
    finally:
        await connection.close()


def postgres_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """A fresh PostgreSQL database that the app reaches as a role owning nothing and unable to
    bypass row-level security (as in production); migrations run as the owner."""
    from tests.conftest import pg_admin

    admin_url = request.getfixturevalue("postgres_url")
    server = request.getfixturevalue("postgres_server")
    role = f"bp_app_{uuid.uuid4().hex[:10]}"
    pg_admin(admin_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')

    def drop_role() -> None:
        pg_admin(admin_url, f'DROP OWNED BY "{role}"')
        pg_admin(server, f'DROP ROLE "{role}"')

    request.addfinalizer(drop_role)
    user = admin_url.split("://", 1)[1].split("@", 1)[0]
    return {
        "BACKPLANE_DATABASE_URL": admin_url.replace(f"://{user}@", f"://{role}@", 1),
        "BACKPLANE_DB__MIGRATION_URL": admin_url,
        "BACKPLANE_DB__APP_ROLE": role,
    }


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("embedded-postgres", marks=pytest.mark.postgres),
        pytest.param("redis-postgres", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq-postgres", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def world(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[World]:
    """The same app on each broker, with the outbox and the actors' tables in SQLite or in
    PostgreSQL (row-level security on, the claim on the driver connection); with a real
    broker, a dramatiq worker in this process consumes (as `backplane worker` would)."""
    broker, _, database = str(request.param).partition("-")
    env = dict(FAST_TASKS)
    if broker == "redis":
        env["BACKPLANE_BROKER_URL"] = request.getfixturevalue("redis_tasks_url")
    elif broker == "rabbitmq":
        env["BACKPLANE_BROKER_URL"] = request.getfixturevalue("rabbitmq_url")
    if database == "postgres":
        env.update(postgres_env(request))
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    app = create_app(settings, plugins=plugins)
    runtime: TaskRuntime = rails(app).tasks
    worker = None
    if broker != "embedded":
        purge(runtime.broker)
    with TestClient(app) as client:
        if broker != "embedded":
            worker = dramatiq.Worker(runtime.broker, worker_threads=2, worker_timeout=100)
            worker.start()
        try:
            yield World(app, client, a, b)
        finally:
            if worker is not None:
                worker.stop()
    if broker != "embedded":
        purge(runtime.broker)
        runtime.broker.close()


def test_success_runs_in_the_enqueuing_tenant(world: World) -> None:
    message_id = world.enqueue(world.a, "log_label", "hello")
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the task done")
    assert world.log(world.a) == [("hello", 1)]
    assert world.log(world.b) == []


def test_retry_then_success_rolls_back_failed_attempts(world: World) -> None:
    message_id = world.enqueue(world.a, "flaky", "third time lucky", 2)
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the task done")
    assert world.log(world.a) == [("third time lucky", 3)]
    assert world.outbox(message_id).attempts == 3


def test_permanent_failure_is_recorded_after_the_retries(world: World) -> None:
    message_id = world.enqueue(world.a, "always_fails")
    row = wait_for(
        lambda: (r := world.outbox(message_id)).status == FAILED and r, message="the task failed"
    )
    assert row.attempts == 3  # the first run and max_retries=2
    assert row.error == "ValueError: this task always fails"


def test_time_limit_stops_a_task(world: World) -> None:
    message_id = world.enqueue(world.a, "sleepy", 3.0)
    row = wait_for(
        lambda: (r := world.outbox(message_id)).status == FAILED and r, message="the task failed"
    )
    assert row.error == "time limit exceeded"
    time.sleep(0.2)
    assert world.log(world.a) == []


def test_duplicate_delivery_is_acknowledged_without_running(world: World) -> None:
    message_id = world.enqueue(world.a, "log_label", "once")
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the task done")
    broker = world.runtime.broker
    duplicate = dramatiq.Message(
        queue_name="kitchen_sink",
        actor_name="kitchen_sink.log_label",
        args=(str(message_id),),
        kwargs={},
        options={},
        message_id=str(uuid.uuid4()),
    )
    for _ in range(3):
        broker.enqueue(duplicate.copy(message_id=str(uuid.uuid4())))
    broker.join("kitchen_sink", timeout=10_000)
    assert world.log(world.a) == [("once", 1)]


def test_rollback_enqueues_nothing_and_commit_enqueues(world: World) -> None:
    url = "/api/kitchen_sink/jobs"
    refused = world.client.post(
        url, headers=world.a.headers, json={"label": "never", "fail_after_enqueue": True}
    )
    assert refused.status_code == 400
    accepted = world.client.post(url, headers=world.a.headers, json={"label": "via http"})
    assert accepted.status_code == 201, accepted.text
    message_id = uuid.UUID(accepted.json()["message_id"])
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the task done")

    async def count() -> int:
        async with world.runtime.sessionmaker() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.actor == "kitchen_sink.log_label")
                )
                or 0
            )

    assert world.runtime.run(count()) == 1
    assert world.log(world.a) == [("via http", 1)]


def test_unknown_task_and_unserialisable_arguments_are_refused(world: World) -> None:
    from backplane.tasks.context import UnknownTaskError

    with pytest.raises(UnknownTaskError):
        world.enqueue(world.a, "no_such_task")
    with pytest.raises(TypeError, match="JSON"):
        world.enqueue(world.a, "log_label", object())


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_schedulers_run_each_period_exactly_once(
    request: pytest.FixtureRequest, data_dir: Path, database: str
) -> None:
    """Two runtimes (as two worker processes would) tick concurrently through half an hour of
    five-minute periods; the database lease lets exactly one of them start each period."""
    import concurrent.futures

    env = dict(FAST_TASKS)
    if database == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    first = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    second = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    first.start(relay=False, scheduler=False)
    second.start(relay=False, scheduler=False)
    started: list[str] = []
    try:
        start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for step in range(31):  # one tick a minute, both schedulers at once
                now = start + timedelta(minutes=step, seconds=1)
                ticks = [pool.submit(r.run, r.schedule_once(now)) for r in (first, second)]
                for tick in ticks:
                    started.extend(tick.result())

        async def periods() -> list[datetime]:
            async with first.sessionmaker() as session:
                rows = await session.scalars(
                    select(ScheduleRun.period_start)
                    .where(ScheduleRun.job == "kitchen_sink.count_notes")
                    .order_by(ScheduleRun.period_start)
                )
                return list(rows)

        runs = first.run(periods())
        assert len(runs) == 7  # 12:00, 12:05, ..., 12:30
        assert len(set(runs)) == 7
        assert started.count("kitchen_sink.count_notes") == 7  # winners only

        async def outbox_rows() -> int:
            async with first.sessionmaker() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(OutboxMessage)
                        .where(OutboxMessage.actor == "kitchen_sink.count_notes")
                    )
                    or 0
                )

        assert first.run(outbox_rows()) == 7  # one task per period, no orphan from a loser
    finally:
        first.stop()
        second.stop()


def test_task_span_continues_the_enqueuing_request_trace(data_dir: Path) -> None:
    from opentelemetry.trace import SpanKind

    from tests.integration.test_telemetry import install_memory_exporter

    exporter = install_memory_exporter()
    settings = make_settings(data_dir, FAST_TASKS)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    app = create_app(settings, plugins=plugins)
    with TestClient(app) as client:
        world = World(app, client, a, a)
        exporter.clear()
        response = client.post(
            "/api/kitchen_sink/jobs", headers=a.headers, json={"label": "traced"}
        )
        assert response.status_code == 201
        message_id = uuid.UUID(response.json()["message_id"])
        wait_for(lambda: world.outbox(message_id).status == DONE, message="the task done")
        spans = wait_for(
            lambda: [
                s for s in exporter.get_finished_spans() if s.name == "task kitchen_sink.log_label"
            ],
            message="the task's span",
        )
    finished = exporter.get_finished_spans()
    request = next(s for s in finished if s.kind is SpanKind.SERVER and "jobs" in s.name)
    task = spans[0]
    assert task.context.trace_id == request.context.trace_id
    assert task.parent is not None
    request_span_ids = {
        s.context.span_id
        for s in finished
        if s.context.trace_id == request.context.trace_id and s is not task
    }
    assert task.parent.span_id in request_span_ids
    assert task.attributes["backplane.task"] == "kitchen_sink.log_label"


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_claim_path_tenant_isolation_lazy_session_and_lost_connections(
    request: pytest.FixtureRequest,
    data_dir: Path,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's claim, driven directly: the actor's session sees only its tenant's rows
    (on PostgreSQL through row-level security too, with raw SQL), an actor that never opens
    its session is still marked done, a failure rolls back its writes and the mark, a done
    task is not run again, and (PostgreSQL, no pool pre-ping) a claim on a connection the
    server dropped is made again on a fresh one."""
    from bp_sample_kitchen_sink.models import Note, TaskLog
    from sqlalchemy import text

    env = {**FAST_TASKS, **MARK_AT_ONCE}
    if database == "postgres":
        env.update(postgres_env(request))
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)
    seen: dict[str, Any] = {}

    async def probe(ctx: Any, label: str) -> None:
        session = ctx.session
        seen["tenant"] = ctx.tenant_id
        seen["notes"] = sorted(
            (await session.execute(text("SELECT body FROM kitchen_sink_notes"))).scalars()
        )
        seen["orm"] = sorted((await session.scalars(select(Note.body))).all())
        if session.bind.dialect.name == "postgresql":
            seen["synchronous_commit"] = (
                await session.execute(text("SELECT current_setting('synchronous_commit')"))
            ).scalar()
        session.add(TaskLog(label=label, attempt=ctx.attempt, message_id=str(ctx.message_id)))
        if label == "fail":
            await session.flush()
            raise RuntimeError("fails after writing")

    async def idle(ctx: Any) -> None:
        seen["idle"] = (ctx.tenant_id, ctx.attempt, ctx.session_opened)

    async def seed() -> None:
        for tenant, body in ((a, "a-note"), (b, "b-note")):
            async with runtime.sessionmaker() as session:
                bind_tenant(session, tenant.tenant_id)
                session.add(Note(body=body))
                await session.commit()

    async def status(message_id: uuid.UUID) -> tuple[str, int]:
        async with runtime.sessionmaker() as session:
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            return row.status, row.attempts

    async def logged(tenant: SeededTenant) -> list[str]:
        async with runtime.sessionmaker() as session:
            bind_tenant(session, tenant.tenant_id)
            return list(await session.scalars(select(TaskLog.label).order_by(TaskLog.id)))

    async def locked_elsewhere(message_id: uuid.UUID) -> Any:
        """A connection of its own taking the task's advisory lock, as a run elsewhere does."""
        import asyncpg  # type: ignore[import-untyped]

        from backplane.tasks.pgclaim import lock_key

        other = await asyncpg.connect(env["BACKPLANE_DB__MIGRATION_URL"])
        locked = await other.fetchval(
            "SELECT pg_try_advisory_lock($1)", lock_key(message_id), timeout=5
        )
        assert locked, "the task's advisory lock is still held"
        return other

    try:
        runtime.run(seed())
        ok = enqueue_log_label(runtime, a.tenant_id, "ok")
        runtime.run(runtime._run(log_label_task(probe), ok, 1, False))
        assert seen["tenant"] == a.tenant_id
        assert seen["orm"] == ["a-note"]
        assert seen["notes"] == (["a-note"] if database == "postgres" else ["a-note", "b-note"])
        if database == "postgres":  # an actor that writes commits durably
            assert seen["synchronous_commit"] == "on"
        assert runtime.run(status(ok)) == (DONE, 1)
        assert runtime.run(logged(a)) == ["ok"]
        seen.clear()
        runtime.run(runtime._run(log_label_task(probe), ok, 2, False))  # a duplicate delivery
        assert seen == {}
        assert runtime.run(logged(a)) == ["ok"]

        failing = enqueue_log_label(runtime, b.tenant_id, "fail")
        with pytest.raises(RuntimeError, match="fails after writing"):
            runtime.run(runtime._run(log_label_task(probe), failing, 1, True))
        assert seen["notes"] == (["b-note"] if database == "postgres" else ["a-note", "b-note"])
        assert runtime.run(status(failing)) == (FAILED, 1)
        assert runtime.run(logged(b)) == []
        if database == "postgres":  # a failed run releases its lock at once: a retry may run
            other = runtime.run(locked_elsewhere(failing))
            runtime.run(other.close())

        if database == "postgres":  # a delivery of a task running elsewhere is retried later
            from backplane.tasks.pgclaim import TaskRunningElsewhere

            busy = enqueue_log_label(runtime, a.tenant_id, "busy")
            other = runtime.run(locked_elsewhere(busy))
            with pytest.raises(TaskRunningElsewhere):
                runtime.run(runtime._run(log_label_task(probe), busy, 1, False))
            assert runtime.run(status(busy)) == (PENDING, 0)
            assert runtime.run(logged(a)) == ["ok"]
            runtime.run(other.execute("SELECT pg_advisory_unlock_all()"))  # it ended, unmarked
            runtime.run(other.close())
            runtime.run(runtime._run(log_label_task(probe), busy, 2, False))
            assert runtime.run(status(busy)) == (DONE, 2)
            assert runtime.run(logged(a)) == ["ok", "busy"]

        quiet = enqueue_log_label(runtime, b.tenant_id)
        if database == "postgres":  # every pooled connection of the runtime dies
            from tests.conftest import pg_admin

            role = env["BACKPLANE_DB__APP_ROLE"]
            pg_admin(
                env["BACKPLANE_DB__MIGRATION_URL"],
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
            )
        runtime.run(runtime._run(log_label_task(idle), quiet, 1, False))
        if database == "postgres":
            assert "claiming again on a new connection" in caplog.text
        # SQLite claims in the session itself; on PostgreSQL an unused session is never opened.
        assert seen["idle"] == (b.tenant_id, 1, database == "sqlite")
        assert runtime.run(status(quiet)) == (DONE, 1)
    finally:
        runtime.stop()


def test_commit_wakes_the_relay(data_dir: Path) -> None:
    """A transaction that enqueued through ``queue_for`` wakes the relay when it commits: the
    task runs long before the relay's next tick (30 s here)."""
    settings = make_settings(data_dir, {**FAST_TASKS, "BACKPLANE_TASKS__RELAY_INTERVAL_S": "30"})
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    app = create_app(settings, plugins=plugins)
    with TestClient(app) as client:
        world = World(app, client, a, a)
        time.sleep(0.5)  # the relay's first pass is over; it now sleeps until woken
        started = time.monotonic()
        message_id = world.enqueue(a, "log_label", "prompt")
        wait_for(
            lambda: world.outbox(message_id).status == DONE, message="the task done", timeout=10
        )
        assert time.monotonic() - started < 5


def test_relay_looks_for_lost_rows_only_when_asked(data_dir: Path) -> None:
    """The relay's frequent pass hands over pending rows only; rows handed over and not
    finished for longer than ``resend_after_s`` (the broker lost them) are handed over again by
    the pass that also looks for those, which the relay loop makes every tenth of that bound."""
    settings = make_settings(data_dir, {**FAST_TASKS, "BACKPLANE_TASKS__RESEND_AFTER_S": "60"})
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)

    async def handed_over_long_ago(message_id: uuid.UUID) -> None:
        async with runtime.sessionmaker() as session, session.begin():
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            assert row.status == "sent"
            row.sent_at = datetime.now(UTC) - timedelta(seconds=120)

    try:
        message_id = enqueue_log_label(runtime, a.tenant_id, "x")
        assert runtime.run(runtime.relay_once(stale_too=False)) == 1
        assert runtime.run(runtime.relay_once(stale_too=False)) == 0
        runtime.run(handed_over_long_ago(message_id))
        assert runtime.run(runtime.relay_once(stale_too=False)) == 0
        assert runtime.run(runtime.relay_once()) == 1  # handed over again
        assert runtime.run(runtime.relay_once()) == 0  # and marked: not again at once
    finally:
        runtime.stop()


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_relay_leaves_rows_of_actors_it_does_not_know_pending(
    request: pytest.FixtureRequest,
    data_dir: Path,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A row whose actor this process did not declare (its plugin is installed elsewhere) is
    neither sent nor marked sent here: it stays pending for a process that knows the actor, and
    once it has waited longer than ``resend_after_s`` the relay's sweep warns about it."""
    env = {**FAST_TASKS, "BACKPLANE_TASKS__RESEND_AFTER_S": "60"}
    if database == "postgres":
        env.update(postgres_env(request))
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)

    async def add_row(actor: str, queue: str) -> uuid.UUID:
        async with runtime.sessionmaker() as session, session.begin():
            row = OutboxMessage(
                id=uuid.uuid4(), actor=actor, queue=queue, args=[], kwargs={},
                trace_context={},
            )  # fmt: skip
            session.add(row)
            return row.id

    async def status(message_id: uuid.UUID) -> str:
        async with runtime.sessionmaker() as session:
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            return row.status

    async def created_long_ago(message_id: uuid.UUID) -> None:
        async with runtime.sessionmaker() as session, session.begin():
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            row.created_at = datetime.now(UTC) - timedelta(seconds=120)

    try:
        foreign = runtime.run(add_row("other_plugin.job", "other_plugin"))
        known = runtime.run(add_row("kitchen_sink.log_label", "kitchen_sink"))
        assert runtime.run(runtime.relay_once()) == 1
        assert runtime.run(status(foreign)) == PENDING
        assert runtime.run(status(known)) == "sent"
        assert runtime.run(runtime.relay_once()) == 0
        assert "other_plugin.job" not in caplog.text  # not waiting long yet
        runtime.run(created_long_ago(foreign))
        assert runtime.run(runtime.relay_once(stale_too=False)) == 0
        assert "other_plugin.job" not in caplog.text  # the frequent pass does not look
        assert runtime.run(runtime.relay_once()) == 0
        assert "1 task(s) of other_plugin.job have waited" in caplog.text
        assert runtime.run(status(foreign)) == PENDING
    finally:
        runtime.stop()


@pytest.mark.postgres
def test_postgres_runs_leave_no_stray_advisory_lock(
    request: pytest.FixtureRequest, data_dir: Path
) -> None:
    """A kept connection holds at most the lock of the last task it marked done (a duplicate
    reads the row as done anyway), a run that did not mark its task releases its lock at once,
    and stopping the runtime releases every lock."""
    import asyncpg  # type: ignore[import-untyped]

    env = {**FAST_TASKS, **MARK_AT_ONCE, **postgres_env(request)}
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)
    admin_url = env["BACKPLANE_DB__MIGRATION_URL"]

    async def quiet(ctx: Any, fail: bool = False) -> None:
        if fail:
            raise RuntimeError("fails without writing")

    task = log_label_task(quiet)

    async def advisory_locks() -> int:
        connection = await asyncpg.connect(admin_url)
        try:
            return int(await connection.fetchval(ADVISORY_LOCKS_HERE))
        finally:
            await connection.close()

    async def done(message_id: uuid.UUID) -> bool:
        async with runtime.sessionmaker() as session:
            row = await session.get(OutboxMessage, message_id)
            return row is not None and row.status == DONE

    try:
        first, second = (enqueue_log_label(runtime, a.tenant_id) for _ in range(2))
        runtime.run(runtime._run(task, first, 1, False))
        assert runtime.run(done(first))
        assert runtime.run(advisory_locks()) == 1  # kept until the connection's next look
        runtime.run(runtime._run(task, second, 1, False))
        assert runtime.run(done(second))
        assert runtime.run(advisory_locks()) == 1  # the first one's went with that look
        runtime.run(runtime._run(task, first, 2, False))  # a duplicate: acknowledged
        failing = enqueue_log_label(runtime, a.tenant_id, True)
        with pytest.raises(RuntimeError, match="fails without writing"):
            runtime.run(runtime._run(task, failing, 1, False))
        assert not runtime.run(done(failing))
        assert runtime.run(advisory_locks()) == 0  # released at once: its retry may run
    finally:
        runtime.stop()
    wait_for(
        lambda: asyncio.run(advisory_locks()) == 0, message="no advisory lock held", timeout=5
    )  # the backends exit


@pytest.mark.postgres
def test_postgres_deferred_done_mark(
    request: pytest.FixtureRequest,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a mark delay, the done-mark of an actor that did not open its session rides on its
    connection's next look (no statement of its own), or is sent on its own once the connection
    has idled that long, or at stop. A task's lock is released only by a statement after the one
    that committed its mark, so a delivery elsewhere meanwhile is retried; a duplicate in the
    same worker is acknowledged; a mark lost with its connection leaves the task unfinished (the
    relay hands it over again later)."""

    from backplane.tasks.pgclaim import PostgresClaimer, TaskRunningElsewhere, lock_key

    delay_s = 2.0
    env = {
        **FAST_TASKS,
        **postgres_env(request),
        "BACKPLANE_TASKS__MARK_DELAY_MS": str(int(delay_s * 1000)),
    }
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    admin_url = env["BACKPLANE_DB__MIGRATION_URL"]
    runs: list[int] = []
    flushes: list[uuid.UUID] = []
    flush = PostgresClaimer._flush

    async def counted_flush(self: Any, connection: Any, timeout: float | None = None) -> None:
        if connection.pending is not None:
            flushes.append(connection.pending.outbox_id)
        await flush(self, connection, timeout)

    monkeypatch.setattr(PostgresClaimer, "_flush", counted_flush)

    async def counted(ctx: Any) -> None:
        runs.append(ctx.attempt)

    task = log_label_task(counted)

    def start() -> TaskRuntime:
        runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
        runtime.start(relay=False, scheduler=False)
        return runtime

    def admin(query: str, *args: Any) -> Any:
        return asyncio.run(fetch_one_as_admin(admin_url, query, *args))

    def status(message_id: uuid.UUID) -> tuple[str, int]:
        row = admin("SELECT status, attempts FROM backplane_task_outbox WHERE id = $1", message_id)
        return str(row[0]), int(row[1])

    def lock_is_free(message_id: uuid.UUID) -> bool:
        row = admin("SELECT pg_try_advisory_lock($1)", lock_key(message_id))
        return bool(row[0])

    def advisory_locks() -> int:
        return int(admin(ADVISORY_LOCKS_HERE)[0])

    runtime = start()
    try:
        first, second, third, fourth = (enqueue_log_label(runtime, a.tenant_id) for _ in range(4))
        runtime.run(runtime._run(task, first, 1, False))
        assert status(first) == (PENDING, 0)  # deferred
        assert not lock_is_free(first)  # held until the mark is committed
        runtime.run(runtime._run(task, first, 2, False))  # a duplicate in the same worker
        assert runs == [1]
        assert status(first) == (DONE, 1)  # marked first, then looked up: done
        runtime.run(runtime._run(task, second, 1, False))
        assert status(second) == (PENDING, 0)
        flushes.clear()
        runtime.run(runtime._run(task, third, 1, False))
        assert flushes == []  # second's mark rode on third's look
        assert status(second) == (DONE, 1)
        assert not lock_is_free(second)  # committed by the look: released by a later statement
        assert status(third) == (PENDING, 0)
        assert advisory_locks() == 2  # second's (marked) and third's (pending)

        other = start()  # another worker: its delivery of third waits for the lock
        try:
            with pytest.raises(TaskRunningElsewhere):
                other.run(other._run(task, third, 2, False))
        finally:
            other.stop()
        assert runs == [1, 1, 1]
        wait_for(
            lambda: status(third) == (DONE, 1),
            message="the third task done",
            timeout=delay_s * 5,
        )  # idle long enough
        assert flushes == [third]
        assert lock_is_free(second)  # released by the statement after its mark

        runtime.run(runtime._run(task, fourth, 1, False))
        assert status(fourth) == (PENDING, 0)
    finally:
        runtime.stop()
    assert status(fourth) == (DONE, 1)  # sent at stop
    assert advisory_locks() == 0

    runtime = start()
    try:
        lost = enqueue_log_label(runtime, a.tenant_id)
        runtime.run(runtime._run(task, lost, 1, False))
        from tests.conftest import pg_admin

        pg_admin(
            admin_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE usename = '{env['BACKPLANE_DB__APP_ROLE']}'",
        )
        wait_for(
            lambda: "its done-mark may be lost" in caplog.text,
            message="the lost done-mark warning",
            timeout=delay_s * 5,
        )
    finally:
        runtime.stop()
    assert status(lost) == (PENDING, 0)  # the relay hands it over again later


@pytest.mark.postgres
@pytest.mark.parametrize("delay_ms", [0, 5_000])
def test_postgres_failing_done_mark(
    request: pytest.FixtureRequest,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    delay_ms: int,
) -> None:
    """A done-mark the server refuses (here a trigger; in life a statement timeout or a read-only
    failover) on a live connection. Sent at once, it fails the run, whose failure is recorded and
    whose lock is released. Carried by the next look, only that mark is lost (logged; the relay
    hands the task over again later): the next task still runs, on a fresh connection."""
    import asyncpg

    from backplane.tasks.pgclaim import lock_key
    from tests.conftest import pg_admin

    env = {
        **FAST_TASKS,
        **postgres_env(request),
        "BACKPLANE_TASKS__MARK_DELAY_MS": str(delay_ms),
    }
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrations.upgrade(plugins)
    a = seed_tenant(plugins, "acme")
    admin_url = env["BACKPLANE_DB__MIGRATION_URL"]
    runs: list[str] = []

    async def counted(ctx: Any, label: str) -> None:
        runs.append(label)

    task = log_label_task(counted, max_retries=3)
    runtime = TaskRuntime(plugins, broker=dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)

    def admin(query: str, *args: Any) -> Any:
        return asyncio.run(fetch_one_as_admin(admin_url, query, *args))

    def row(message_id: uuid.UUID) -> tuple[str, str | None]:
        found = admin("SELECT status, error FROM backplane_task_outbox WHERE id = $1", message_id)
        return str(found[0]), found[1]

    try:
        refused = enqueue_log_label(runtime, a.tenant_id, "refused")
        after = enqueue_log_label(runtime, a.tenant_id, "after")
        pg_admin(
            admin_url,
            "CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.id = '{refused}' AND NEW.status = 'done' THEN "
            "RAISE EXCEPTION 'mark refused'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_mark BEFORE UPDATE ON backplane_task_outbox "
            "FOR EACH ROW EXECUTE FUNCTION refuse_mark()",
        )
        if delay_ms == 0:
            with pytest.raises(asyncpg.RaiseError, match="mark refused"):
                runtime.run(runtime._run(task, refused, 1, False))
            status, error = row(refused)
            assert status == "sent"
            assert error is not None
            assert "mark refused" in error  # the failure is recorded
            # its connection was closed: the server releases the lock as the backend exits
            wait_for(
                lambda: admin("SELECT pg_try_advisory_lock($1)", lock_key(refused))[0],
                message="the refused task's lock released",
                timeout=10,
            )
        else:
            runtime.run(runtime._run(task, refused, 1, False))  # its mark is deferred
            runtime.run(runtime._run(task, after, 1, False))  # carries it: refused
            assert "claiming again on a new connection" in caplog.text
            assert "its done-mark may be lost" in caplog.text
            assert row(refused) == (PENDING, None)  # the relay hands it over again later
        assert runs == ["refused", "after"] if delay_ms else ["refused"]
    finally:
        runtime.stop()
    if delay_ms:
        assert row(after) == (DONE, None)  # its own mark was sent at stop
