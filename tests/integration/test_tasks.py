"""Background tasks on the embedded broker: success, retries, failure, time limit, duplicates,
rollback, tenant context and trace propagation, and the per-period scheduler lease."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

from backplane.app import create_app
from backplane.db.tenancy import bind_tenant
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.tasks.models import DELAYED, DONE, FAILED, PENDING, OutboxMessage, ScheduleRun
from backplane.tasks.runtime import RegisteredTask, TaskRuntime
from backplane.testing import SeededTenant, seed_tenant
from tests.app_helpers import rails, task_runtime
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.waiting import wait_for

FAST_TASKS = {
    "BACKPLANE_TASKS__MIN_BACKOFF_MS": "10",
    "BACKPLANE_TASKS__MAX_BACKOFF_MS": "50",
    "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
    "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
    "BACKPLANE_PLUGINS": "kitchen_sink",
}


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


@contextlib.contextmanager
def one_tenant_world(data_dir: Path, env: dict[str, str]) -> Iterator[World]:
    """The app on SQLite with ``env``, its task runtime started, tenant ``acme`` as both a and b."""
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
    a = seed_tenant(plugins, "acme")
    app = create_app(settings, plugins=plugins)
    with TestClient(app) as client:
        yield World(app, client, a, a)


def migrated_plugins(
    request: pytest.FixtureRequest,
    data_dir: Path,
    database: str,
    extra: dict[str, str] | None = None,
) -> PluginSet:
    """Every plugin, migrated, with fast task settings (and ``extra``); on PostgreSQL reached as
    the application role (``postgres_app_env``)."""
    env = {**FAST_TASKS, **(extra or {})}
    if database == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    return plugins


async def outbox_rows(runtime: TaskRuntime, actor: str) -> int:
    async with runtime.sessionmaker() as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.actor == actor)
        return int(await session.scalar(query) or 0)


def purge(broker: dramatiq.Broker) -> None:
    """Empty the real broker's queues (and their delay/dead-letter queues) between tests."""
    if hasattr(broker, "channel"):  # RabbitMQ declares queues lazily: declare, then purge
        for queue in list(broker.get_declared_queues()):
            broker.declare_queue(queue, ensure=True)
    broker.flush_all()


def run_as_log_label(
    runtime: TaskRuntime,
    function: Any,
    message_id: uuid.UUID,
    attempt: int = 1,
    *,
    final: bool = False,
    time_limit_ms: int = 10_000,
) -> None:
    """Run one delivery of a ``kitchen_sink.log_label`` row with an actor of the test's own,
    as a dramatiq worker thread would (the tests' one reach into the runtime's internals)."""
    task = RegisteredTask(
        name="kitchen_sink.log_label", plugin="kitchen_sink", function=function,
        queue="kitchen_sink", max_retries=3, time_limit_ms=time_limit_ms, schedule=None,
    )  # fmt: skip
    runtime.run(runtime._run(task, message_id, attempt, final))


def enqueue_log_label(runtime: TaskRuntime, tenant_id: uuid.UUID, *args: Any) -> uuid.UUID:
    """Enqueue ``kitchen_sink.log_label`` for a tenant in a transaction of its own."""

    async def enqueue() -> uuid.UUID:
        async with runtime.sessionmaker() as session:
            bind_tenant(session, tenant_id)
            message_id = await runtime.queue_for(session).enqueue("kitchen_sink.log_label", *args)
            await session.commit()
            return message_id

    return runtime.run(enqueue())


def app_role_backends(env: dict[str, str], *, waiting_on_a_lock: bool = False) -> int:
    """How many server connections the application's role has open (PostgreSQL), or how many
    of them wait on a lock."""
    import asyncpg  # type: ignore[import-untyped]

    query = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1"
    if waiting_on_a_lock:
        query += " AND wait_event_type = 'Lock'"

    async def count() -> int:
        connection = await asyncpg.connect(env["BACKPLANE_DB__MIGRATION_URL"])
        try:
            return int(await connection.fetchval(query, env["BACKPLANE_DB__APP_ROLE"]))
        finally:
            await connection.close()

    return asyncio.run(count())


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
        env.update(request.getfixturevalue("postgres_app_env"))
    settings = make_settings(data_dir, env)
    plugins = load_plugins(settings)
    migrate(plugins)
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
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the tasks to settle")
    assert world.log(world.a) == [("hello", 1)]
    assert world.log(world.b) == []


def test_a_delayed_task_waits_for_its_time_and_a_past_time_runs_at_once(world: World) -> None:
    when = datetime.now(UTC) + timedelta(seconds=1.5)

    async def go() -> tuple[uuid.UUID, uuid.UUID]:
        async with world.runtime.sessionmaker() as session:
            bind_tenant(session, world.a.tenant_id)
            queue = world.runtime.queue_for(session)
            with pytest.raises(ValueError, match="aware datetime"):
                await queue.enqueue_at(when.replace(tzinfo=None), "kitchen_sink.log_label", "x")
            # another timezone's clock: stored as the same instant
            later = await queue.enqueue_at(
                when.astimezone(timezone(timedelta(hours=-5))), "kitchen_sink.log_label", "later"
            )
            past = await queue.enqueue_at(
                when - timedelta(hours=1), "kitchen_sink.log_label", "past"
            )
            await session.commit()
            return later, past

    later, past = world.runtime.run(go())
    wait_for(lambda: world.outbox(past).status == DONE, message="the past-due task to run")
    row = world.outbox(later)
    assert row.status == DELAYED
    assert world.log(world.a) == [("past", 1)]
    row = wait_for(
        lambda: (r := world.outbox(later)).status == DONE and r, message="the delayed task to run"
    )
    assert row.not_before is not None
    assert row.finished_at is not None
    assert as_utc(row.not_before) == when
    assert as_utc(row.finished_at) >= when
    assert world.log(world.a) == [("past", 1), ("later", 1)]
    assert world.log(world.b) == []


def as_utc(moment: datetime) -> datetime:
    """SQLite gives the stored UTC wall time back without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def test_retry_then_success_rolls_back_failed_attempts(world: World) -> None:
    message_id = world.enqueue(world.a, "flaky", "third time lucky", 2)
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the tasks to settle")
    assert world.log(world.a) == [("third time lucky", 3)]
    assert world.outbox(message_id).attempts == 3


def test_permanent_failure_is_recorded_after_the_retries(world: World) -> None:
    message_id = world.enqueue(world.a, "always_fails")
    row = wait_for(
        lambda: (r := world.outbox(message_id)).status == FAILED and r,
        message="the tasks to settle",
    )
    assert row.attempts == 3  # the first run and max_retries=2
    assert row.error == "ValueError: this task always fails"


def test_time_limit_stops_a_task(world: World) -> None:
    message_id = world.enqueue(world.a, "sleepy", 3.0)
    row = wait_for(
        lambda: (r := world.outbox(message_id)).status == FAILED and r,
        message="the tasks to settle",
    )
    assert row.error == "time limit exceeded"
    time.sleep(0.2)
    assert world.log(world.a) == []


def test_duplicate_delivery_is_acknowledged_without_running(world: World) -> None:
    message_id = world.enqueue(world.a, "log_label", "once")
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the tasks to settle")
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
    wait_for(lambda: world.outbox(message_id).status == DONE, message="the tasks to settle")

    assert world.runtime.run(outbox_rows(world.runtime, "kitchen_sink.log_label")) == 1
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
    migrate(plugins)
    seed_tenant(plugins, "acme")  # count_notes runs per tenant: one run a period in each
    seed_tenant(plugins, "globex")
    first = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
    second = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
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

        # One task per period and tenant, no orphan from a loser.
        assert first.run(outbox_rows(first, "kitchen_sink.count_notes")) == 7 * 2
    finally:
        first.stop()
        second.stop()


def test_task_span_continues_the_enqueuing_request_trace(data_dir: Path) -> None:
    from opentelemetry.trace import SpanKind

    from tests.integration.test_telemetry import install_memory_exporter

    exporter = install_memory_exporter()
    with one_tenant_world(data_dir, FAST_TASKS) as world:
        exporter.clear()
        response = world.client.post(
            "/api/kitchen_sink/jobs", headers=world.a.headers, json={"label": "traced"}
        )
        assert response.status_code == 201
        message_id = uuid.UUID(response.json()["message_id"])
        wait_for(lambda: world.outbox(message_id).status == DONE, message="the tasks to settle")
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
def test_claim_path_tenant_isolation_and_lost_connections(
    request: pytest.FixtureRequest,
    data_dir: Path,
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The worker's claim, driven directly: the actor's session sees only its tenant's rows
    (on PostgreSQL through row-level security too, with raw SQL) and commits durably, an actor
    that never uses its session opens none and is still marked done, a failure rolls back its
    writes and the mark, a done task is not run again, and (PostgreSQL, no pool pre-ping) a
    claim on a connection the server dropped is made again on a fresh one."""
    from bp_sample_kitchen_sink.models import Note, TaskLog
    from sqlalchemy import text

    plugins = migrated_plugins(request, data_dir, database)
    a, b = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    runtime = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)
    seen: dict[str, Any] = {}

    async def probe(ctx: Any, label: str) -> None:
        session = ctx.db
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
        seen["idle"] = (ctx.tenant_id, ctx.attempt, ctx.plugin)

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

    try:
        runtime.run(seed())
        ok = enqueue_log_label(runtime, a.tenant_id, "ok")
        run_as_log_label(runtime, probe, ok)
        assert seen["tenant"] == a.tenant_id
        assert seen["orm"] == ["a-note"]
        assert seen["notes"] == (["a-note"] if database == "postgres" else ["a-note", "b-note"])
        if database == "postgres":  # an actor that writes commits durably
            assert seen["synchronous_commit"] == "on"
        assert runtime.run(status(ok)) == (DONE, 1)
        assert runtime.run(logged(a)) == ["ok"]
        seen.clear()
        run_as_log_label(runtime, probe, ok, 2)  # a duplicate delivery
        assert seen == {}
        assert runtime.run(logged(a)) == ["ok"]

        failing = enqueue_log_label(runtime, b.tenant_id, "fail")
        with pytest.raises(RuntimeError, match="fails after writing"):
            run_as_log_label(runtime, probe, failing, final=True)
        assert seen["notes"] == (["b-note"] if database == "postgres" else ["a-note", "b-note"])
        assert runtime.run(status(failing)) == (FAILED, 1)
        assert runtime.run(logged(b)) == []

        quiet = enqueue_log_label(runtime, b.tenant_id)
        if database == "postgres":  # every pooled connection of the runtime dies
            from tests.conftest import pg_admin

            env = request.getfixturevalue("postgres_app_env")
            role = env["BACKPLANE_DB__APP_ROLE"]
            pg_admin(
                env["BACKPLANE_DB__MIGRATION_URL"],
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
            )
        run_as_log_label(runtime, idle, quiet)
        if database == "postgres":
            assert "claiming again on a new connection" in caplog.text
        assert seen["idle"] == (b.tenant_id, 1, "kitchen_sink")  # the plugin's own kernel
        assert runtime.run(status(quiet)) == (DONE, 1)
    finally:
        runtime.stop()
    if database == "postgres":  # the connections kept between runs are closed at stop
        wait_for(
            lambda: app_role_backends(request.getfixturevalue("postgres_app_env")) == 0,
            timeout=10,
            message="the tasks to settle",
        )


def test_commit_wakes_the_relay(data_dir: Path) -> None:
    """A transaction that enqueued through ``queue_for`` wakes the relay when it commits: the
    task runs long before the relay's next tick (30 s here)."""
    with one_tenant_world(
        data_dir, {**FAST_TASKS, "BACKPLANE_TASKS__RELAY_INTERVAL_S": "30"}
    ) as world:
        time.sleep(0.5)  # the relay's first pass is over; it now sleeps until woken
        started = time.monotonic()
        message_id = world.enqueue(world.a, "log_label", "prompt")
        wait_for(
            lambda: world.outbox(message_id).status == DONE,
            timeout=10,
            message="the tasks to settle",
        )
        assert time.monotonic() - started < 5


def test_the_relay_is_woken_by_the_commit_not_by_a_savepoint_release(data_dir: Path) -> None:
    """A task enqueued in a savepoint (a bulk job's chunk runs in one) wakes the relay when the
    transaction commits. SQLAlchemy fires ``after_commit`` at the savepoint's release too; woken
    then, the relay found no committed row and the task waited for its next tick."""
    from backplane.tasks.context import TaskQueue

    with one_tenant_world(data_dir, FAST_TASKS) as world:
        runtime = world.runtime
        woken: list[str] = []

        async def go() -> None:
            async with runtime.sessionmaker() as session:
                bind_tenant(session, world.a.tenant_id)
                queue = TaskQueue(
                    session, runtime.names, runtime.queues, on_commit=lambda: woken.append("x")
                )
                async with session.begin_nested():
                    await queue.enqueue("kitchen_sink.log_label", "in a savepoint")
                assert woken == []  # released, not committed
                await session.commit()
                assert woken == ["x"]

        runtime.run(go())


def test_relay_looks_for_lost_rows_only_when_asked(data_dir: Path) -> None:
    """The relay's frequent pass hands over pending rows only; rows handed over and not
    finished for longer than ``resend_after_s`` (the broker lost them) are handed over again by
    the pass that also looks for those, which the relay loop makes every tenth of that bound."""
    settings = make_settings(data_dir, {**FAST_TASKS, "BACKPLANE_TASKS__RESEND_AFTER_S": "60"})
    plugins = load_plugins(settings)
    migrate(plugins)
    a = seed_tenant(plugins, "acme")
    runtime = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
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
    plugins = migrated_plugins(
        request, data_dir, database, {"BACKPLANE_TASKS__RESEND_AFTER_S": "60"}
    )
    runtime = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
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


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize("first_run", ["commits", "fails"])
def test_a_concurrent_duplicate_waits_for_the_run_holding_the_task(
    request: pytest.FixtureRequest, data_dir: Path, database: str, first_run: str
) -> None:
    """Two workers (two runtimes) get the same task at once. The second one's claim waits on
    the row (PostgreSQL's row lock, SQLite's write lock) while the first one's actor runs; when
    the first commits, the second finds the task done and does not run it; when the first
    fails, the second claims the task and runs it."""
    import threading

    plugins = migrated_plugins(request, data_dir, database)
    a = seed_tenant(plugins, "acme")
    first, second = (task_runtime(plugins, dramatiq.brokers.stub.StubBroker()) for _ in "12")
    first.start(relay=False, scheduler=False)
    second.start(relay=False, scheduler=False)
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    async def held(ctx: Any) -> None:
        runs.append(ctx.attempt)
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        if first_run == "fails":
            raise RuntimeError("the first run fails")

    async def counted(ctx: Any) -> None:
        runs.append(ctx.attempt)

    async def status(message_id: uuid.UUID) -> tuple[str, int]:
        async with first.sessionmaker() as session:
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            return row.status, row.attempts

    outcomes: dict[str, BaseException | None] = {}

    def deliver(runtime: TaskRuntime, actor: Any, attempt: int, key: str) -> threading.Thread:
        def go() -> None:
            try:
                run_as_log_label(runtime, actor, message_id, attempt)
                outcomes[key] = None
            except BaseException as exc:  # noqa: BLE001 - checked below
                outcomes[key] = exc

        thread = threading.Thread(target=go)
        thread.start()
        return thread

    try:
        message_id = enqueue_log_label(first, a.tenant_id)
        one = deliver(first, held, 1, "first")
        assert started.wait(10)
        two = deliver(second, counted, 2, "second")
        if database == "postgres":
            wait_for(
                lambda: app_role_backends(
                    request.getfixturevalue("postgres_app_env"), waiting_on_a_lock=True
                ),
                message="the second delivery to wait on the row",
            )
        else:
            time.sleep(0.5)
        assert two.is_alive()  # waiting for the first run's transaction
        assert runs == [1]
        release.set()
        one.join(15)
        two.join(15)
        assert not one.is_alive()
        assert not two.is_alive()
        assert outcomes["second"] is None
        if first_run == "commits":
            assert outcomes["first"] is None
            assert runs == [1]  # acknowledged without running
            assert first.run(status(message_id)) == (DONE, 1)
        else:
            assert isinstance(outcomes["first"], RuntimeError)
            assert runs == [1, 2]  # the row was released: the second delivery ran it
            assert first.run(status(message_id)) == (DONE, 2)
    finally:
        release.set()
        first.stop()
        second.stop()


@pytest.mark.postgres
def test_time_limit_in_the_middle_of_a_statement_releases_the_task(
    request: pytest.FixtureRequest, data_dir: Path
) -> None:
    """An actor whose time limit expires while its statement runs on PostgreSQL: the run fails
    with the limit recorded, the task's row is released (not left locked by a connection in
    doubt), and its next delivery runs it."""
    from sqlalchemy import text

    plugins = migrated_plugins(request, data_dir, "postgres")
    a = seed_tenant(plugins, "acme")
    runtime = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)
    runs: list[int] = []

    async def slow_statement(ctx: Any) -> None:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            await ctx.db.execute(text("SELECT pg_sleep(5)"))

    async def row(message_id: uuid.UUID) -> tuple[str, int, str | None]:
        async with runtime.sessionmaker() as session:
            found = await session.get(OutboxMessage, message_id)
            assert found is not None
            return found.status, found.attempts, found.error

    try:
        message_id = enqueue_log_label(runtime, a.tenant_id)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            run_as_log_label(runtime, slow_statement, message_id, time_limit_ms=300)
        assert time.monotonic() - started < 4
        assert runtime.run(row(message_id)) == ("sent", 1, "time limit exceeded")
        run_as_log_label(runtime, slow_statement, message_id, 2, time_limit_ms=2_000)
        assert runs == [1, 2]
        assert runtime.run(row(message_id)) == (DONE, 2, None)
    finally:
        runtime.stop()


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_actors_own_commit(
    request: pytest.FixtureRequest, data_dir: Path, database: str
) -> None:
    """SQLite: an actor's ``session.commit()`` commits its run, done-mark included, and so
    releases the database's one write lock while the actor goes on (webhook delivery commits
    before its HTTP call for that). PostgreSQL: it ends a savepoint of the run's transaction;
    the work and the mark become durable together when the actor returns."""
    import threading

    from bp_sample_kitchen_sink.models import TaskLog

    plugins = migrated_plugins(request, data_dir, database)
    a = seed_tenant(plugins, "acme")
    runtime = task_runtime(plugins, dramatiq.brokers.stub.StubBroker())
    runtime.start(relay=False, scheduler=False)
    committed, release = threading.Event(), threading.Event()

    async def commits_then_waits(ctx: Any) -> None:
        ctx.db.add(TaskLog(label="early", attempt=ctx.attempt, message_id="-"))
        await ctx.db.commit()
        committed.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        ctx.db.add(TaskLog(label="late", attempt=ctx.attempt, message_id="-"))

    async def seen_from_outside() -> tuple[str, list[str]]:
        # Another connection (on SQLite, one that could not read past a held write lock's
        # uncommitted changes either: it sees the last commit).
        async with runtime.sessionmaker() as session:
            bind_tenant(session, a.tenant_id)
            row = await session.get(OutboxMessage, message_id)
            assert row is not None
            labels = list(await session.scalars(select(TaskLog.label).order_by(TaskLog.id)))
            return row.status, labels

    try:
        message_id = enqueue_log_label(runtime, a.tenant_id)
        thread = threading.Thread(
            target=run_as_log_label, args=(runtime, commits_then_waits, message_id)
        )
        thread.start()
        assert committed.wait(10)
        status, labels = runtime.run(seen_from_outside())
        if database == "sqlite":
            assert (status, labels) == (DONE, ["early"])
        else:
            assert (status, labels) == (PENDING, [])
        release.set()
        thread.join(15)
        assert runtime.run(seen_from_outside()) == (DONE, ["early", "late"])
    finally:
        release.set()
        runtime.stop()
