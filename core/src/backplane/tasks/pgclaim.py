"""The task claim on PostgreSQL: an advisory lock and one statement per run, no transaction.

A run of an actor that never opens its session costs one round trip under load, on a connection
the claimer keeps between runs:

1. The look (:data:`_LOOK`) takes the task's advisory lock (``pg_try_advisory_lock``) and reads
   its row (arguments, tenant, trace context, status). A row already ``done`` is a duplicate
   delivery, acknowledged without running. A lock held elsewhere on a row not done means the
   task is running in another worker (or its worker just died and the server has not noticed
   yet): this delivery raises :class:`TaskRunningElsewhere`, so dramatiq hands it over again
   after its backoff, when the task is done or its lock is free.
2. The actor runs; its done-mark is deferred (``tasks.mark_delay_ms``) and carried by the same
   connection's next look (:data:`_LOOK_AFTER_MARK`), or sent on its own (:data:`_FLUSH_MARK`)
   once the connection has idled that long, and at stop. Marks commit asynchronously: losing one
   in a database crash, or in a worker killed before it was sent, is the same as the worker
   dying just before it, which every actor already tolerates (the row stays ``sent`` and is
   handed over again after ``tasks.resend_after_s``). With no delay the mark is sent at once.

A task's lock is released only by a statement after the one that committed its mark: a delivery
elsewhere meanwhile finds the lock held (and is retried later) or the row done. So a connection
holds at most two locks: the pending task's, and the one marked by its last statement
(``marked_key``); the next look releases the latter (``pg_advisory_unlock``) or, with no mark to
carry, all (``pg_advisory_unlock_all``). A run that did not mark its task releases at once, and
a connection whose state is in doubt (a statement or reset interrupted) is closed, which releases
whatever it held (a pending mark is then lost, as above, and logged).

One race is left, and it is narrow: the look's snapshot is taken when its statement starts and
the lock is taken while it runs, so if another delivery of the same task commits its mark and
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
CLOSE_TIMEOUT_S = 5.0
"""At stop, how long a deferred mark may take to be sent before its connection is closed."""
DROP_TIMEOUT_S = 1.0
"""The same when another connection was found dead (the server may be gone; a look waits)."""

_LOOK = """
SELECT pg_advisory_unlock_all() IS NULL, pg_try_advisory_lock($2),
       o.args::text, o.kwargs::text, o.context_tenant_id, o.trace_context::text, o.created_at,
       o.status
FROM (SELECT 1) AS one LEFT JOIN backplane_task_outbox AS o ON o.id = $1
"""
"""Release the locks this connection still holds (all of committed marks), take the task's lock
and read its row: one row even when the task's row is missing, so both locks are always seen
to."""
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

    ``mark_delay_s`` > 0 defers the done-mark of a task whose actor did not open its session:
    it is carried by the connection's next look (one round trip fewer per run under load), or
    sent on its own once the connection has been idle that long."""

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
        are likely dead too, and their locks went with them), or if the mark it carried failed
        (that mark is lost, as a worker crash would lose it: this task should not fail for it).
        """
        key = lock_key(outbox_id)
        for retry in (False, True):
            connection = await self._take(key)
            carried = False
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
                    carried = True
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
            except BaseException as exc:
                dead = connection.driver.is_closed()
                if dead:
                    await self._drop(connection)
                else:  # the look may have run (and taken the lock): close, releasing it
                    await self.forget(connection)
                if (dead or (carried and isinstance(exc, Exception))) and not retry:
                    log.warning("task claim failed (%r); claiming again on a new connection", exc)
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
        connection's next statement. The run's lock is kept until a later statement.

        Sent now and failing, the connection is closed (releasing the lock; the run fails)."""
        connection.pending = PendingMark(outbox_id, attempt, datetime.now(UTC), connection.key)
        connection.locked = False  # now the pending mark's
        if self._mark_delay_s > 0:
            return
        try:
            await self._flush(connection)
        except BaseException:
            connection.pending = None  # not lost: the run fails, and its failure is recorded
            await self.forget(connection)
            raise

    async def unlock(self, connection: ClaimConnection) -> None:
        """Release the connection's locks now: the run's (a run that did not mark its task done
        must not keep its next delivery out) and a committed mark's. Never called with a
        deferred mark pending: its lock must outlive the statement that commits it."""
        if connection.pending is not None:
            raise RuntimeError("unlock() with a deferred done-mark pending")
        if connection.locked or connection.marked_key is not None:
            await connection.driver.fetchval(_UNLOCK)
            connection.locked = False
            connection.marked_key = None

    async def release(self, connection: ClaimConnection) -> None:
        """Keep a healthy connection for the next run, or send its mark, release its locks and
        return it to the pool (closing it if any of that fails)."""
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
                await self.unlock(connection)
                await greenlet_spawn(connection.pooled.close)
                return
        except BaseException as exc:
            await self.forget(connection)
            if not isinstance(exc, Exception):
                raise
            return
        await self.forget(connection)

    async def close(self) -> None:
        """Send the deferred marks (each within ``CLOSE_TIMEOUT_S``), close the kept
        connections (their locks go with them), and any given back later."""
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._flushing:
            await asyncio.wait(self._flushing, timeout=CLOSE_TIMEOUT_S)
        await self._flush_and_forget_idle(CLOSE_TIMEOUT_S)

    async def _flush(self, connection: ClaimConnection, timeout: float | None = None) -> None:
        """Send the connection's deferred mark on its own (nothing if it has none)."""
        pending = connection.pending
        if pending is None:
            return
        marked = await connection.driver.fetchval(
            _FLUSH_MARK,
            pending.outbox_id,
            pending.attempt,
            pending.finished,
            connection.marked_key,
            timeout=timeout,
        )
        connection.pending = None
        connection.marked_key = pending.key
        if not marked:
            _log_marked_elsewhere(pending)

    def _schedule_flush(self, when: float) -> None:
        """Have the timer fire at ``when`` at the latest."""
        if self._closed:
            return
        if self._flush_timer is not None:
            if self._flush_timer.when() <= when:
                return
            self._flush_timer.cancel()
        self._flush_timer = self._loop.call_at(when, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_timer = None
        task = self._loop.create_task(self._flush_due())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_due(self) -> None:
        """Send the deferred marks of the connections idle for the whole mark delay, one at a
        time, each taken out of the idle list only when its turn comes (one a run took meanwhile
        carries its mark with its look); the timer is set again for the others."""
        due_by = self._loop.time() - self._mark_delay_s
        later = [
            c.idle_since for c in self._idle if c.pending is not None and c.idle_since > due_by
        ]
        if later:
            self._schedule_flush(min(later) + self._mark_delay_s)
        due = [c for c in self._idle if c.pending is not None and c.idle_since <= due_by]
        for connection in due:
            if connection not in self._idle:
                continue
            self._idle.remove(connection)
            try:
                await self._flush(connection)
            except BaseException as exc:
                await self.forget(connection)
                if not isinstance(exc, Exception):
                    raise
                log.warning("a deferred task done-mark could not be sent: %r", exc)
                continue
            await self.release(connection)

    async def _flush_and_forget_idle(self, timeout: float) -> None:
        """Close the idle connections, sending their deferred marks first where the server
        still answers (within ``timeout`` each)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            if connection.pending is not None and not connection.driver.is_closed():
                try:
                    await self._flush(connection, timeout=timeout)
                except Exception as exc:  # noqa: BLE001 - forget() below logs the lost mark
                    log.warning("a deferred task done-mark could not be sent: %r", exc)
            await self.forget(connection)

    async def _take(self, key: int) -> ClaimConnection:
        """An idle connection (the one whose deferred mark is this task's, if any: a duplicate
        delivery is then acknowledged rather than retried), else a new one from the pool."""
        for index, connection in enumerate(self._idle):
            if connection.pending is not None and connection.pending.key == key:
                return self._idle.pop(index)
        if self._idle:
            return self._idle.pop()
        return ClaimConnection(await self._engine.raw_connection())

    async def _drop(self, connection: ClaimConnection) -> None:
        """A dead connection: drop it, the kept ones (after sending their marks where they
        still can) and the pool's idle ones."""
        await self.forget(connection)
        await self._flush_and_forget_idle(DROP_TIMEOUT_S)
        await self._engine.dispose(close=False)

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
        if connection.pooled.is_valid:  # not forgotten already (a failed mark, then release)
            with contextlib.suppress(Exception):
                await greenlet_spawn(connection.pooled.invalidate)


def _log_marked_elsewhere(pending: PendingMark) -> None:
    log.info("task %s was already marked done by another run", pending.outbox_id)
