"""The task runtime of one process: actors declared on the broker, the relay, the scheduler.

Actors are thin dramatiq actors taking one argument, the outbox row id; arguments, tenant and
trace context live in the row. Actor code runs as a coroutine on the runtime's own event loop
(one thread, one database engine), called from dramatiq's worker threads, so dramatiq's
retries, backoff, dead-lettering and graceful shutdown apply unchanged.

A run is one transaction on SQLite and on PostgreSQL alike (:meth:`TaskRuntime._run`): its
first statement claims the row (marks it done if it is not yet, and reads it), the actor runs in
that session, and the commit makes the done-mark and the actor's writes durable together; a
duplicate delivery finds nothing to claim, or waits on the row lock until the run holding it
ends. An actor that never touches its session still costs that transaction (``BEGIN``, the
claim, ``COMMIT``): the price of running it exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import dramatiq
import msgspec
from croniter import croniter
from dramatiq.middleware import CurrentMessage
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from backplane._contract import Task
from backplane.db.engine import Database
from backplane.db.tenancy import bind_tenant, sqlite_bypass
from backplane.plugins import KERNEL_PLUGIN, PluginSet
from backplane.tasks.broker import EMBEDDED, broker_kind, make_broker
from backplane.tasks.context import TaskQueue
from backplane.tasks.loop import LoopThread
from backplane.tasks.models import DONE, FAILED, SENT, OutboxMessage, ScheduleRun
from backplane.tasks.relay import OutboxRelay
from backplane.telemetry import tracing_enabled

log = logging.getLogger(__name__)
T = TypeVar("T")
TIME_LIMIT_GRACE_MS = 15_000
"""The coroutine enforces the actor's limit itself; the worker thread waits this much longer
(so recording the failure is never cut short) before dramatiq's own time limit applies."""
BACKSTOP_S = 10.0

_meter = metrics.get_meter("backplane.tasks")
_run_time = _meter.create_histogram(
    "backplane.tasks.run_time", unit="s", description="Time actors spent running"
)
_queue_latency = _meter.create_histogram(
    "backplane.tasks.queue_latency", unit="s", description="From enqueue to the start of a run"
)
_failures = _meter.create_counter("backplane.tasks.failures", description="Actor runs that raised")


_tracer = trace.get_tracer("backplane.tasks")
_OUTBOX = cast(Table, OutboxMessage.__table__)
_CLAIMED = ("args", "kwargs", "context_tenant_id", "trace_context", "created_at")

_CLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("claim_id"), _OUTBOX.c.status != DONE)
    .values(
        status=DONE,
        attempts=bindparam("claim_attempt"),
        error=None,
        finished_at=bindparam("claim_now"),
    )
    .returning(*(_OUTBOX.c[name] for name in _CLAIMED))
)
"""The claim, first statement of the actor's transaction: marks the task done (only if it is not
yet) and reads it, so the mark commits exactly when the actor's writes do, and a concurrent or
later duplicate finds nothing to claim. Built once: no per-call construction or cache-key
generation."""
_PG_CLAIM = """
UPDATE backplane_task_outbox
SET status = 'done', attempts = $2, error = NULL, finished_at = $3
WHERE id = $1 AND status <> 'done'
RETURNING args, kwargs, context_tenant_id, trace_context, created_at
"""
"""The claim on PostgreSQL, on the asyncpg connection (the same statement as :data:`_CLAIM`)."""


class TaskViews(Protocol):
    """Makes the kernel view each actor receives (see :meth:`TaskRuntime.attach`)."""

    def __call__(self, plugin: str, **binding: Any) -> Any:
        """The view of ``plugin`` bound as ``binding`` says (``db``, ``tenant_id``, ...)."""

    def close(self) -> None:
        """Release what the views hold (at stop)."""


class _Transaction(Protocol):
    """The run's transaction: asyncpg's on PostgreSQL, the SQLAlchemy connection's on SQLite."""

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


@contextlib.contextmanager
def _attached(context: otel_context.Context) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def _driver(connection: AsyncConnection) -> Any:
    """The driver's connection under a checked-out, valid SQLAlchemy connection (no I/O, no
    greenlet: ``get_raw_connection`` spends one)."""
    sync = connection.sync_connection
    assert sync is not None  # started
    return sync.connection.driver_connection


class RegisteredTask(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    plugin: str
    function: Any
    queue: str
    max_retries: int
    time_limit_ms: int
    schedule: str | None
    per_tenant: bool = False


def _task_items(plugin: str, actor: Any = None, **options: Any) -> list[Task]:
    task = actor if isinstance(actor, Task) else Task(actor=actor, **options)
    if not callable(task.actor):
        raise TypeError(f"register_tasks expects a function, got {task.actor!r}")
    name = getattr(task.actor, "__name__", repr(task.actor))
    if task.schedule is not None and not croniter.is_valid(task.schedule):
        raise ValueError(f"task {name}: invalid cron expression {task.schedule!r}")
    if task.per_tenant and task.schedule is None:
        raise ValueError(
            f"task {name}: per_tenant=True needs a schedule (a task enqueued by code already "
            "runs for the enqueuing tenant)"
        )
    return [task]


async def tenants_running(session: AsyncSession, plugin: str) -> list[uuid.UUID]:
    """The tenants that have ``plugin`` enabled (every tenant, unless switched off), oldest
    first; ``session`` must see every tenant (a maintenance session).

    On PostgreSQL their rows are share-locked (``FOR KEY SHARE``) until the transaction ends:
    a tenant being deleted meanwhile (its row locked ``FOR UPDATE``) is waited for and then left
    out, instead of getting a task enqueued after its deletion, which its foreign key would
    refuse, failing the others' too. SQLite has no row locks; its one writer gives the same.
    """
    from backplane.identity.models import Tenant, TenantPlugin

    switched_off = select(TenantPlugin.tenant_id).where(
        TenantPlugin.plugin == plugin, TenantPlugin.enabled.is_(False)
    )
    query = select(Tenant.id).where(Tenant.id.not_in(switched_off))
    query = query.with_for_update(read=True, key_share=True, of=Tenant)
    return list(await session.scalars(query.order_by(Tenant.created_at, Tenant.id)))


def collect_tasks(plugins: PluginSet) -> list[RegisteredTask]:
    """Every task registered through ``register_tasks``, named ``<plugin>.<function>``."""
    return [
        RegisteredTask(
            name=f"{plugin}.{task.actor.__name__}",
            plugin=plugin,
            function=task.actor,
            queue=task.queue,
            max_retries=task.max_retries,
            time_limit_ms=task.time_limit_ms,
            schedule=task.schedule,
            per_tenant=task.per_tenant,
        )
        for plugin, task in plugins.collect("register_tasks", _task_items)
    ]


class TaskRuntime:
    """Declares actors on a broker and runs the outbox relay and the periodic scheduler."""

    def __init__(self, plugins: PluginSet, broker: dramatiq.Broker | None = None) -> None:
        self.settings = plugins.settings
        self.kind = broker_kind(self.settings)
        self.broker = broker or make_broker(self.settings)
        self.tasks = {t.name: t for t in collect_tasks(plugins)}
        self.names: dict[Callable[..., Any], str] = {
            t.function: t.name for t in self.tasks.values()
        }
        self.queues = {t.name: t.queue for t in self.tasks.values()}
        self.plugins = plugins
        self._thread: LoopThread | None = None
        self._attached: Callable[[Database], TaskViews] | None = None
        """What :meth:`attach` gave: makes the views of the kernel actors receive."""
        self._views: TaskViews | None = None
        self._database: Database | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._background: list[Future[Any]] = []
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._relay: OutboxRelay | None = None
        self._last_period: dict[str, datetime] = {}
        self._kept: list[AsyncConnection] = []
        """Connections kept checked out between runs (see :meth:`_give_back`)."""
        capacity = self.settings.db.pool_size + self.settings.db.max_overflow
        # Room left in the pool for the relay, the scheduler and a failure being recorded.
        self._keep = max(0, min(self.settings.tasks.threads, capacity - 3))
        self._traced = False
        """Whether an SDK tracer provider was installed when the runtime started (asking on
        every run cost an environment lookup and an ABC instance check). As for the database
        instrumentation, a provider must be installed before the app (or worker) is built."""
        for task in self.tasks.values():
            self._declare(task)

    # -- actors ----------------------------------------------------------------------------
    def _declare(self, task: RegisteredTask) -> None:
        def run(outbox_id: str) -> None:
            self._run_sync(task, outbox_id)

        run.__name__ = task.name.replace(".", "_")
        tasks_settings = self.settings.tasks
        dramatiq.Actor(
            run,
            broker=self.broker,
            actor_name=task.name,
            queue_name=task.queue,
            priority=0,
            options={
                "max_retries": task.max_retries,
                "min_backoff": tasks_settings.min_backoff_ms,
                "max_backoff": tasks_settings.max_backoff_ms,
                "time_limit": task.time_limit_ms + TIME_LIMIT_GRACE_MS,
            },
        )

    def _run_sync(self, task: RegisteredTask, outbox_id: str) -> None:
        message = CurrentMessage.get_current_message()
        retries = int(message.options.get("retries", 0)) if message is not None else 0
        final = retries >= task.max_retries
        self.run(
            self._run(task, uuid.UUID(outbox_id), retries + 1, final),
            task.time_limit_ms / 1000 + BACKSTOP_S,
        )

    async def _run(
        self, task: RegisteredTask, outbox_id: uuid.UUID, attempt: int, final: bool
    ) -> None:
        """Claim the task, run its actor and commit, in one transaction on one connection (see
        the module docstring). Raising rolls back the actor's writes and the claim, records the
        failure and lets dramatiq retry. The actor's session is opened on the run's connection
        when the actor first uses it (on PostgreSQL in a savepoint: see :meth:`_claim`)."""
        now = datetime.now(UTC)
        connection, transaction, claimed = await self._claim(outbox_id, attempt, now)
        session: AsyncSession | None = None
        try:
            if claimed is None:
                log.info(
                    "task %s: %s already done or unknown; delivery acknowledged",
                    task.name,
                    outbox_id,
                )
                await transaction.rollback()
                return
            args, kwargs, tenant_id, trace_context, created = claimed

            def open_session() -> AsyncSession:
                nonlocal session
                if session is None:
                    # SQLite: the session takes the run's transaction over (its commit commits
                    # the task too, as webhook delivery relies on). PostgreSQL: the session
                    # begins its own, which asyncpg makes a savepoint of the run's (_claim).
                    session = self.sessionmaker(
                        bind=connection, join_transaction_mode="control_fully"
                    )
                    bind_tenant(session, tenant_id)  # and PostgreSQL's RLS, as it begins
                return session

            context = self.views(
                task.plugin,
                db=open_session,
                tenant_id=tenant_id,
                message_id=outbox_id,
                attempt=attempt,
                maintenance=self._maintenance_for(task, connection, open_session),
            )
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            _queue_latency.record((now - created).total_seconds(), {"task": task.name})
            await self._invoke(task, context, args, kwargs, trace_context)
            if session is not None:
                await session.commit()
                await session.close()
            await transaction.commit()
        except BaseException as exc:
            await self._abandon(connection, transaction, session)
            if claimed is not None:
                _failures.add(1, {"task": task.name})
                await self._record_failure(outbox_id, attempt, final, exc)
            raise
        finally:
            await self._give_back(connection)

    async def _invoke(
        self,
        task: RegisteredTask,
        context: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        trace_context: dict[str, str] | None,
    ) -> None:
        """The actor, in its span and within its time limit."""
        started = time.perf_counter()
        try:
            with self._span(task, context, trace_context):
                async with asyncio.timeout(task.time_limit_ms / 1000):
                    result = task.function(context, *args, **kwargs)
                    if inspect.isawaitable(result):
                        await result
        finally:
            _run_time.record(time.perf_counter() - started, {"task": task.name})

    async def _claim(
        self, outbox_id: uuid.UUID, attempt: int, now: datetime
    ) -> tuple[AsyncConnection, _Transaction, tuple[Any, ...] | None]:
        """A connection, the run's transaction begun on it, and the claimed row (None: nothing
        to claim).

        PostgreSQL: the transaction and the claim go straight to the asyncpg connection (with
        the connection kept between runs, see :meth:`_give_back`, a no-op run costs about 60 %
        of the CPU it did through SQLAlchemy's execution layer, which missed the kernel's
        throughput goal: ``bench/RESULTS.md``, issue 16). An actor's session, if it opens one,
        begins through SQLAlchemy on the same connection, which asyncpg turns into a savepoint
        of this transaction. A connection found dead (the engine has no pool pre-ping, three
        round trips per checkout on asyncpg) is dropped with the pool's idle ones, and the
        claim made once more on a fresh one.
        """
        assert self._engine is not None
        for retry in (False, True):
            connection = self._kept.pop() if self._kept else await self._engine.connect()
            transaction: _Transaction = connection
            driver: Any = None
            try:
                if connection.dialect.name != "postgresql":
                    values = {"claim_id": outbox_id, "claim_attempt": attempt, "claim_now": now}
                    row = (await connection.execute(_CLAIM, values)).first()
                    return connection, transaction, None if row is None else tuple(row)
                driver = _driver(connection)
                transaction = begun = driver.transaction()
                await begun.start()
                found = await driver.fetchrow(_PG_CLAIM, outbox_id, attempt, now)
            except BaseException as exc:
                lost = driver is not None and driver.is_closed()
                await self._abandon(connection, transaction, None)
                await connection.close()
                if retry or not lost or not isinstance(exc, Exception):
                    raise
                log.warning("task claim failed (%r); claiming again on a new connection", exc)
                await self._drop_kept()  # likely dead too
                await self._engine.dispose(close=False)
                continue
            if found is None:
                return connection, transaction, None
            args, kwargs, tenant_id, trace_context, created = found
            if tenant_id is not None:
                tenant_id = uuid.UUID(bytes=tenant_id.bytes)  # from asyncpg's own UUID type
            return connection, transaction, (args, kwargs, tenant_id, trace_context, created)
        raise AssertionError("unreachable")

    async def _give_back(self, connection: AsyncConnection) -> None:
        """Keep a run's connection for the next run if it is clean, else close it.

        A pool checkout and check-in per run (SQLAlchemy's, each through a greenlet) cost about
        a third of a no-op run's CPU and kept the kernel under its throughput goal on Redis
        (``bench/RESULTS.md``, issue 16), so up to :attr:`_keep` connections stay checked out
        between runs, about one per worker thread."""
        keep = (
            len(self._kept) < self._keep
            and not connection.invalidated
            and not connection.in_transaction()
        )
        if keep and connection.dialect.name == "postgresql":
            keep = not _driver(connection).is_in_transaction()
        if keep:
            self._kept.append(connection)
        else:
            await connection.close()

    async def _drop_kept(self) -> None:
        """Close the kept connections (at stop, or when one was found dead)."""
        kept, self._kept = self._kept, []
        for connection in kept:
            with contextlib.suppress(Exception):  # a dead one is discarded all the same
                await connection.invalidate()
            await connection.close()

    @staticmethod
    async def _abandon(
        connection: AsyncConnection, transaction: _Transaction, session: AsyncSession | None
    ) -> None:
        """Roll the run back. A connection that cannot be (dead, or interrupted mid-statement)
        is closed rather than returned to the pool in the middle of its transaction; closing
        it makes the server roll back, which releases the task's row."""
        try:
            if session is not None:
                await session.close()
            await transaction.rollback()
        except BaseException as exc:
            log.warning("task connection could not be rolled back (%r); closing it", exc)
            await connection.invalidate()
            if not isinstance(exc, Exception):
                raise

    def _maintenance_for(
        self,
        task: RegisteredTask,
        connection: AsyncConnection,
        task_session: Callable[[], AsyncSession],
    ) -> Callable[[str], contextlib.AbstractAsyncContextManager[AsyncSession]] | None:
        """What ``ctx.maintenance`` opens, for the kernel's own tasks only: on PostgreSQL a
        transaction on the maintenance connection; on SQLite the task's own session (a second
        connection would wait for the write lock this one holds), its tenancy bypassed."""
        if task.plugin != KERNEL_PLUGIN:
            return None
        if connection.dialect.name != "sqlite":
            return self._maintenance_session

        @contextlib.asynccontextmanager
        async def in_place(reason: str) -> AsyncIterator[AsyncSession]:
            session = task_session()
            with sqlite_bypass(session, reason):
                yield session

        return in_place

    def _span(
        self, task: RegisteredTask, context: Any, trace_context: dict[str, str] | None
    ) -> contextlib.AbstractContextManager[Any]:
        """The run's span, child of the enqueuing request's; while no SDK tracer provider is
        installed, only the enqueuer's context (the no-op span cost about 15 µs per run)."""
        # No carrier (nothing was traced when it was enqueued): the current context, as
        # extract({}) would return, without the propagators' work.
        parent = propagate.extract(trace_context) if trace_context else None
        if not self._traced:
            # Still pass the enqueuer's context on (to tasks this one enqueues, say).
            return _attached(parent) if parent is not None else contextlib.nullcontext()
        return _tracer.start_as_current_span(
            f"task {task.name}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "backplane.task": task.name,
                "backplane.attempt": context.attempt,
                "messaging.message.id": str(context.message_id),
            },
        )

    async def _record_failure(
        self, outbox_id: uuid.UUID, attempt: int, final: bool, exc: BaseException
    ) -> None:
        assert self._sessions is not None
        text = f"{type(exc).__name__}: {exc}"[:2000]
        text = "time limit exceeded" if isinstance(exc, TimeoutError) else text
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id, OutboxMessage.status != DONE)
                .values(
                    attempts=attempt,
                    error=text,
                    status=FAILED if final else SENT,
                    sent_at=datetime.now(UTC),
                    finished_at=datetime.now(UTC) if final else None,
                )
            )

    @contextlib.asynccontextmanager
    async def _maintenance_session(self, reason: str) -> AsyncIterator[AsyncSession]:
        """PostgreSQL: a transaction on the maintenance connection, for the kernel's tasks."""
        assert self._database is not None
        async with self._database.maintenance(reason) as session, session.begin():
            yield session

    def attach(self, views: Callable[[Database], TaskViews]) -> None:
        """How actors get their kernel: ``views(database)``, called when the runtime starts with
        its own database (the runtime runs on a loop of its own), makes the views. The kernel
        layer attaches this (:meth:`backplane.kernel.Rails.build`); the runtime never imports
        it."""
        self._attached = views

    @property
    def views(self) -> TaskViews:
        """Makes the kernel view an actor receives (:class:`TaskViews`)."""
        if self._views is None:
            raise RuntimeError("the task runtime is not started, or nothing was attached")
        return self._views

    def queue_for(self, session: AsyncSession) -> TaskQueue:
        return TaskQueue(session, self.names, self.queues, on_commit=self.nudge)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, *, relay: bool = True, scheduler: bool = True) -> None:
        """Start the loop thread, and the relay and scheduler on it."""
        self._traced = tracing_enabled()
        self._thread = LoopThread()
        self._thread.start_and_wait()
        self._thread.submit(self._open()).result(30)
        if relay:
            assert self._relay is not None
            relaying = self._relay.run_forever(
                self._stopping, self._wake, requeue_first=self.kind == EMBEDDED
            )
            self._background.append(self._thread.submit(relaying))
        if scheduler and any(t.schedule for t in self.tasks.values()):
            self._background.append(self._thread.submit(self._schedule_forever()))

    async def _open(self) -> None:
        # No pre-ping (three round trips per checkout on asyncpg): the claim retries once on a
        # dead connection, and the relay and scheduler retry on their next tick.
        self._database = Database(self.settings, pre_ping=False)
        self._engine = self._database.engine
        self._sessions = self._database.sessions
        if self._attached is not None:
            self._views = self._attached(self._database)
        self._relay = OutboxRelay(
            self.settings.tasks, self.kind, self.broker, self.tasks, self._sessions
        )
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._thread.loop.call_soon_threadsafe(self._stopping.set)
        self._thread.loop.call_soon_threadsafe(self._wake.set)
        for future in self._background:
            try:
                future.result(10)
            except Exception:
                log.exception("task runtime background job failed at shutdown")
        self._background.clear()
        if self._database is not None:
            self._thread.submit(self._drop_kept()).result(10)
            self._thread.submit(self._database.dispose()).result(10)
            self._database = None
        if self._views is not None:
            self._views.close()
            self._views = None
        self._thread.stop()
        self._thread = None
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the runtime's loop (for commands and tests)."""
        if self._thread is None:
            raise RuntimeError("the task runtime is not started")
        return self._thread.call(coro, timeout)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            raise RuntimeError("the task runtime is not started")
        return self._sessions

    # -- relay -------------------------------------------------------------------------------
    async def relay_once(self, *, stale_too: bool = True) -> int:
        """Hand committed rows to the broker now; see :meth:`OutboxRelay.relay_once`."""
        if self._relay is None:
            raise RuntimeError("the task runtime is not started")
        return await self._relay.relay_once(stale_too=stale_too)

    def nudge(self) -> None:
        """Run the relay now rather than at its next tick (thread-safe; a no-op when stopped).

        Called after a transaction that enqueued tasks commits, so a task does not wait up to
        ``relay_interval_s`` to be handed over when the committing process runs a relay."""
        thread = self._thread
        if thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                thread.loop.call_soon_threadsafe(self._wake.set)

    # -- scheduler ---------------------------------------------------------------------------
    async def schedule_once(self, now: datetime | None = None) -> list[str]:
        """Enqueue each periodic job whose current period has not run yet, anywhere.

        The ``(job, period_start)`` primary key is the lease: of any number of schedulers,
        exactly one inserts it, in the same transaction as the job's outbox row, or as the
        rows of a per-tenant job, one per tenant that has the job's plugin enabled (so each
        tenant's run is a task of its own: bound to it, failing and retried alone).
        """
        assert self._sessions is not None
        now = now or datetime.now(UTC)
        started = []
        for task in self.tasks.values():
            if task.schedule is None:
                continue
            period: datetime = croniter(task.schedule, now).get_prev(datetime)
            if self._last_period.get(task.name) == period:
                continue
            try:
                await self._start_period(task, period)
                started.append(task.name)
            except IntegrityError as exc:
                if not await self._period_taken(task, period):
                    # Not the lease's key: a task row was refused (a constraint of the outbox).
                    # The period stays open for the next tick rather than being lost.
                    log.warning("task scheduler could not start %s: %s", task.name, exc.orig)
                    continue
                # else another scheduler took this period
            except OperationalError as exc:
                # Typically SQLite's write lock still held by another writer after its busy
                # timeout. The period stays open: the next tick tries it again, and another
                # scheduler that held the lock is already through this job or next to it.
                log.warning("task scheduler could not start %s now: %s", task.name, exc.orig)
                continue
            self._last_period[task.name] = period
        return started

    async def _period_taken(self, task: RegisteredTask, period: datetime) -> bool:
        """Whether some scheduler holds the lease of ``period`` of ``task``."""
        assert self._database is not None
        async with self._database.sessions() as session:
            lease = ScheduleRun.__table__.c
            found = await session.scalar(
                select(lease.job).where(lease.job == task.name, lease.period_start == period)
            )
        return found is not None

    async def _start_period(self, task: RegisteredTask, period: datetime) -> None:
        """Take ``period`` of ``task`` and enqueue its run(s), in one transaction. A per-tenant
        job's session is a maintenance one: it reads every tenant's plugin switches."""
        assert self._database is not None
        if task.per_tenant:
            opened = self._database.maintenance(f"scheduler: {task.name} for each tenant")
        else:
            opened = self._database.sessions()
        async with opened as session, session.begin():
            queue = TaskQueue(session, self.names, self.queues, on_commit=self.nudge)
            if task.per_tenant:
                tenants: list[uuid.UUID | None] = [*await tenants_running(session, task.plugin)]
            else:
                tenants = [None]
            ids = [queue.enqueue_for(tenant_id, task.name) for tenant_id in tenants]
            # A per-tenant period no tenant runs still takes its lease (nil: no row).
            lease = ids[0] if ids else uuid.UUID(int=0)
            session.add(ScheduleRun(job=task.name, period_start=period, outbox_id=lease))

    async def _schedule_forever(self) -> None:
        interval = self.settings.tasks.scheduler_interval_s
        failing = False  # once per outage, as the relay logs: not a traceback every tick
        while not self._stopping.is_set():
            try:
                await self.schedule_once()
            except Exception:
                if not failing:
                    log.exception("task scheduler failed; retrying quietly until it works")
                failing = True
            else:
                if failing:
                    log.warning("task scheduler works again")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)
