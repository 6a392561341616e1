"""The task claim on PostgreSQL: an advisory lock and two statements, no transaction of its own.

A run of an actor that never opens its session costs two round trips on a connection the
claimer keeps between runs:

1. :data:`_LOOK` takes the task's advisory lock (``pg_try_advisory_lock``) and reads its row
   (arguments, tenant, trace context, status). A row already ``done`` is a duplicate delivery,
   acknowledged without running. A lock held elsewhere on a row not done means the task is
   running in another worker (or its worker just died and the server has not noticed yet):
   this delivery raises :class:`TaskRunningElsewhere`, so dramatiq hands it over again after
   its backoff, when the task is done or its lock is free.
2. :data:`_MARK` marks the row done, in its own transaction, committed asynchronously: losing
   it in a database crash (the last few hundred milliseconds of commits, never a torn one) is the
   same as the worker dying just before it, which every actor already tolerates (the row stays
   ``sent`` and is handed over again after ``tasks.resend_after_s``).

The lock of a task marked done is released by the connection's next look, in the same statement
(``pg_advisory_unlock_all``: the task is done, and the look reads the row whether or not it got
the lock, so a duplicate meanwhile is still acknowledged as one); a run that did not mark its
task releases it at once, and a connection whose state is in doubt (a look or a reset
interrupted) is closed, which releases whatever it held.

One race is left, and it is narrow: the look's snapshot is taken when its statement starts and
the lock is taken while it runs, so if another delivery of the same task marks it done and
releases the lock in between (microseconds), this one runs it again. Its done-mark then finds
the row done; what an actor wrote through its session is rolled back, other effects are not
(actors are expected to be idempotent).

``BEGIN``, a claiming ``UPDATE ... RETURNING`` and ``COMMIT`` per run, which this replaces, were
the round trips that bounded the kernel's task throughput.

An actor that opens its session works in savepoints of one transaction on the same connection
(the runtime's ``open_session``), whose last statement marks the row under its row lock,
committed durably: what it wrote and the mark commit together or not at all.

Connections are kept checked out between runs, at most ``keep``: a pool checkout and check-in per
run (two greenlet hops and the pool's reset) cost more than a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import dramatiq
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

log = logging.getLogger(__name__)

_LOOK = """
SELECT pg_advisory_unlock_all() IS NULL, pg_try_advisory_lock($2),
       o.args::text, o.kwargs::text, o.context_tenant_id, o.trace_context::text, o.created_at,
       o.status
FROM (SELECT 1) AS one LEFT JOIN backplane_task_outbox AS o ON o.id = $1
"""
"""Release the lock this connection still holds (a kept connection holds at most the last
task's), take the task's lock and read its row: one row even when the task's row is missing, so
both locks are always seen to."""
_LOOK_AFTER_MARK = """
WITH marked AS (
    UPDATE backplane_task_outbox
    SET status = 'done', attempts = $2, error = NULL, finished_at = $3
    WHERE id = $1 AND status <> 'done'
    RETURNING 1
)
SELECT pg_advisory_unlock($4) IS NULL, pg_try_advisory_lock($6),
       o.args::text, o.kwargs::text, o.context_tenant_id, o.trace_context::text, o.created_at,
       o.status, (SELECT count(*) FROM marked), set_config('synchronous_commit', 'off', true)
FROM (SELECT 1) AS one LEFT JOIN backplane_task_outbox AS o ON o.id = $5
"""
"""The look carrying the connection's deferred mark, committed asynchronously: marks the last
task done (only if it is not yet), releases the lock of the one before (marked by an earlier
statement, so committed; NULL for none), takes the new task's lock and reads its row. The last
task's own lock is kept: its mark is not committed until this statement is."""
_FLUSH_MARK = """
WITH marked AS (
    UPDATE backplane_task_outbox
    SET status = 'done', attempts = $2, error = NULL, finished_at = $3
    WHERE id = $1 AND status <> 'done'
    RETURNING 1
)
SELECT (SELECT count(*) FROM marked), pg_advisory_unlock($4) IS NULL,
       set_config('synchronous_commit', 'off', true)
"""
"""A deferred mark on its own (no look came to carry it in time), as in :data:`_LOOK_AFTER_MARK`."""
_UNLOCK = "SELECT pg_advisory_unlock_all()"


class TaskRunningElsewhere(dramatiq.Retry):
    """The task's lock is held by another run and its row is not done: dramatiq hands this
    delivery over again after its backoff (a ``Retry``: logged as information, not an error)."""


def lock_key(outbox_id: uuid.UUID) -> int:
    """The task's advisory lock: its id's first 64 bits (a collision only delays a delivery
    while the other task runs: it is retried)."""
    high = outbox_id.int >> 64  # int.from_bytes(outbox_id.bytes[:8], "big", signed=True)
    return high - (1 << 64) if high >= 1 << 63 else high


class TaskRow(NamedTuple):
    """What the look found: the row (JSON as text), and whether this run may go ahead."""

    args: str
    kwargs: str
    tenant_id: uuid.UUID | None
    trace: str | None
    created: datetime
    done: bool
    locked: bool
    """This run holds the task's lock (False: another run does)."""


class PendingMark(NamedTuple):
    """A task whose actor returned and whose done-mark waits for the connection's next
    statement (its lock is held until a later statement than the one that marks it)."""

    outbox_id: uuid.UUID
    attempt: int
    finished: datetime
    key: int


class ClaimConnection:
    """A connection the claimer lends to one run, and the advisory locks it holds.

    ``locked``: it holds the current run's task lock. ``pending``: a finished task whose mark is
    deferred (lock held). ``marked_key``: the lock of a task marked by this connection's last
    statement, still held (released by the next one)."""

    __slots__ = ("idle_since", "key", "locked", "marked_key", "pending", "pooled")

    def __init__(self, pooled: PoolProxiedConnection) -> None:
        self.pooled = pooled
        self.locked = False
        self.key = 0
        self.pending: PendingMark | None = None
        self.marked_key: int | None = None
        self.idle_since = 0.0

    @property
    def driver(self) -> Any:
        return self.pooled.driver_connection


class PostgresClaimer:
    """Looks up, locks and marks tasks; made and used on the runtime's loop only.

    ``mark_delay_s`` > 0 defers the done-mark of a task whose actor wrote nothing: it is carried
    by the connection's next look (one round trip fewer per run under load), or sent on its own
    once the connection has been idle that long."""

    def __init__(self, engine: AsyncEngine, keep: int, mark_delay_s: float = 0.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._engine = engine
        self._keep = keep
        self._mark_delay_s = mark_delay_s
        self._idle: list[ClaimConnection] = []
        self._closed = False
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def look(self, outbox_id: uuid.UUID) -> tuple[ClaimConnection, TaskRow | None]:
        """Lock the task and read its row on a kept connection; None if there is no row.

        Made again once on a fresh connection if the first one turns out dead (without a pool
        pre-ping, a connection may have died idle; the kept ones are dropped with it, as they
        are likely dead too, and their locks went with them)."""
        key = lock_key(outbox_id)
        for retry in (False, True):
            connection = await self._take()
            try:
                pending = connection.pending
                if pending is not None and pending.key == key:
                    # The same task again (or its key's twin): mark it first, then look as usual
                    # (a lock is never taken twice by one connection).
                    await self._flush(connection)
                    pending = None
                if pending is None:
                    row = await connection.driver.fetchrow(_LOOK, outbox_id, key)
                    connection.marked_key = None  # released by the look
                else:
                    row = await connection.driver.fetchrow(
                        _LOOK_AFTER_MARK,
                        pending.outbox_id,
                        pending.attempt,
                        pending.finished,
                        connection.marked_key,
                        outbox_id,
                        key,
                    )
                    connection.pending = None
                    connection.marked_key = pending.key
                    if not row[8]:
                        _log_marked_elsewhere(pending)
            except BaseException:
                dead = connection.driver.is_closed()
                if dead:
                    await self._drop(connection)
                else:  # the look may have run (and taken the lock): close, releasing it
                    await self.forget(connection)
                if dead and not retry:
                    log.warning("task database connection lost; claiming again on a new one")
                    continue
                raise
            connection.locked = bool(row[1])
            connection.key = key
            if row[7] is None:
                return connection, None
            tenant_id = row[4]
            if tenant_id is not None and type(tenant_id) is not uuid.UUID:
                tenant_id = uuid.UUID(bytes=tenant_id.bytes)  # asyncpg's own UUID type
            done = row[7] == "done"
            found = TaskRow(row[2], row[3], tenant_id, row[5], row[6], done, connection.locked)
            return connection, found
        raise AssertionError("unreachable")

    async def mark_done(
        self, connection: ClaimConnection, outbox_id: uuid.UUID, attempt: int
    ) -> None:
        """Mark the task done (asynchronous commit), now or, with a mark delay, with the
        connection's next statement. The run keeps the task's lock either way."""
        connection.pending = PendingMark(outbox_id, attempt, datetime.now(UTC), connection.key)
        connection.locked = False  # now the pending mark's
        if self._mark_delay_s <= 0:
            await self._flush(connection)

    async def unlock(self, connection: ClaimConnection) -> None:
        """Release the task's lock now: a run that did not mark its task done (it failed, or
        its session's transaction marked it) must not keep its next delivery out."""
        if connection.locked:
            await connection.driver.fetchval(_UNLOCK)  # all: any other is a committed mark's
            connection.locked = False
            connection.marked_key = None

    async def release(self, connection: ClaimConnection) -> None:
        """Keep a healthy connection for the next run, or return it to the pool unlocked."""
        driver = connection.driver
        healthy = (
            connection.pooled.is_valid
            and driver is not None
            and not driver.is_closed()
            and not driver.is_in_transaction()
        )
        if healthy and not self._closed and len(self._idle) < self._keep:
            self._idle.append(connection)
            if connection.pending is not None:
                connection.idle_since = self._loop.time()
                self._schedule_flush(connection.idle_since + self._mark_delay_s)
            return
        try:
            if healthy:
                await self._flush(connection)
                connection.locked = True  # whatever it holds now is released below
                await self.unlock(connection)
        except Exception:  # noqa: BLE001 - closing it releases its lock
            healthy = False
        if healthy:
            await greenlet_spawn(connection.pooled.close)
        else:
            await self.forget(connection)

    async def close(self) -> None:
        """Send the deferred marks, close the kept connections (their locks go with them), and
        any given back later."""
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        await self._flush_idle(everything=True)
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self._forget_idle()

    async def _flush(self, connection: ClaimConnection) -> None:
        """Send the connection's deferred mark on its own (nothing if it has none)."""
        pending = connection.pending
        if pending is None:
            return
        marked = await connection.driver.fetchval(
            _FLUSH_MARK, pending.outbox_id, pending.attempt, pending.finished, connection.marked_key
        )
        connection.pending = None
        connection.marked_key = pending.key
        if not marked:
            _log_marked_elsewhere(pending)

    def _schedule_flush(self, when: float) -> None:
        if self._flush_timer is None and not self._closed:
            self._flush_timer = self._loop.call_at(when, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_timer = None
        task = self._loop.create_task(self._flush_idle())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_idle(self, *, everything: bool = False) -> None:
        """Send the deferred marks of the connections idle for the mark delay (``everything``:
        of all idle ones); those taken meanwhile carry theirs with their look."""
        due_by = self._loop.time() - self._mark_delay_s
        waiting = [
            c
            for c in self._idle
            if c.pending is not None and (everything or c.idle_since <= due_by)
        ]
        later = [c.idle_since for c in self._idle if c.pending is not None and c not in waiting]
        if later:
            self._schedule_flush(min(later) + self._mark_delay_s)
        if not waiting:
            return
        self._idle = [c for c in self._idle if c not in waiting]
        for connection in waiting:
            try:
                await self._flush(connection)
            except Exception as exc:  # noqa: BLE001 - the next flush or look must still run
                log.warning("a deferred task done-mark could not be sent: %r", exc)
                await self.forget(connection)
                continue
            await self.release(connection)

    async def _take(self) -> ClaimConnection:
        if self._idle:
            return self._idle.pop()
        return ClaimConnection(await self._engine.raw_connection())

    async def _drop(self, connection: ClaimConnection) -> None:
        """A dead connection: drop it, the kept ones and the pool's idle ones."""
        await self.forget(connection)
        await self._forget_idle()
        await self._engine.dispose(close=False)

    async def _forget_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await self.forget(connection)

    @staticmethod
    async def forget(connection: ClaimConnection) -> None:
        """Close the connection (releasing its locks) instead of returning it to the pool: it is
        dead, or its state is in doubt (an interrupted look or reset). A deferred mark it held
        is lost: its task is handed over again after ``tasks.resend_after_s``."""
        if connection.pending is not None:
            log.warning(
                "task %s: its done-mark may be lost with its connection (then the task is "
                "handed over again after tasks.resend_after_s)",
                connection.pending.outbox_id,
            )
            connection.pending = None
        connection.locked = False
        connection.marked_key = None
        with contextlib.suppress(Exception):
            await greenlet_spawn(connection.pooled.invalidate)


def _log_marked_elsewhere(pending: PendingMark) -> None:
    log.info("task %s was already marked done by another run", pending.outbox_id)
