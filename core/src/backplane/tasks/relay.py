"""The outbox relay: committed outbox rows handed to the broker, and lost ones handed again.

A relay hands over only rows of actors its own process declared: a row for a plugin installed
in other processes only is left for their relays.

Every process that runs a task runtime runs a relay (``backplane serve``, ``backplane worker``);
rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays never send a row
twice at once, and a row sent twice (a crash between the send and the mark) is a duplicate
delivery, which the claim acknowledges without running.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane.settings import TaskSettings
from backplane.tasks.broker import EMBEDDED
from backplane.tasks.models import DELAYED, PENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)
RELAY_SENDERS = 4
"""RabbitMQ: threads (each with its own connection) a relay batch is published over."""


class OutboxRelay:
    """Hands committed outbox rows to the broker; runs on the task runtime's loop."""

    def __init__(
        self,
        settings: TaskSettings,
        kind: str,
        broker: dramatiq.Broker,
        actors: Collection[str],
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._settings = settings
        self._kind = kind
        self._broker = broker
        self._actors = sorted(actors)
        """Actor names this process declared: rows for others (a plugin not installed here)
        are left pending for a process that has it, never marked sent unsent."""
        self._sessions = sessions
        self._senders: ThreadPoolExecutor | None = None
        if kind == "rabbitmq":
            self._senders = ThreadPoolExecutor(RELAY_SENDERS, thread_name_prefix="backplane-relay")

    async def requeue_in_memory_losses(self) -> None:
        """Embedded mode keeps messages in memory: whatever was handed over and not finished
        when the process stopped is handed over again."""
        async with self._sessions() as session, session.begin():
            result: Any = await session.execute(
                update(OutboxMessage).where(OutboxMessage.status == SENT).values(status=PENDING)
            )
        if result.rowcount:
            log.warning("re-queued %d task(s) interrupted by the last shutdown", result.rowcount)

    async def relay_once(self, *, stale_too: bool = True) -> int:
        """Hand committed pending rows (and, with ``stale_too``, long-unfinished ones) to the
        broker; return how many.

        Pending rows are few and found through the status index, delayed ones whose time has
        come through the (status, not_before) one; finding stale ones means
        looking at every row handed over and not finished yet (a whole backlog), so the relay
        loop does that only every tenth of ``tasks.resend_after_s``, and warns then about
        pending rows no actor here can run (see :meth:`_warn_about_orphans`)."""
        settings = self._settings
        due = and_(OutboxMessage.status == DELAYED, OutboxMessage.not_before <= datetime.now(UTC))
        waiting = or_(OutboxMessage.status == PENDING, due)
        if stale_too:
            stale = datetime.now(UTC) - timedelta(seconds=settings.resend_after_s)
            lost = and_(OutboxMessage.status == SENT, OutboxMessage.sent_at < stale)
            waiting = or_(waiting, lost)
            await self._warn_about_orphans(stale)
        async with self._sessions() as session, session.begin():
            query = (
                select(OutboxMessage.id, OutboxMessage.actor, OutboxMessage.queue)
                .where(waiting, OutboxMessage.actor.in_(self._actors))
                .order_by(OutboxMessage.created_at)
                .limit(settings.relay_batch)
            )
            postgres = session.bind.dialect.name == "postgresql"
            if postgres:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            messages: list[dramatiq.Message[Any]] = [
                dramatiq.Message(
                    queue_name=queue,
                    actor_name=actor,
                    args=(str(row_id),),
                    kwargs={},
                    options={},
                    message_id=str(row_id),
                )
                for row_id, actor, queue in rows
            ]
            embedded = self._kind == EMBEDDED
            if not embedded:
                await self._send_all(messages)
            if postgres:
                # Losing this mark in a database crash only hands the rows over again, and a
                # duplicate delivery is acknowledged without running: no WAL flush to wait for.
                await session.execute(text("SET LOCAL synchronous_commit TO off"))
            # Only rows still waiting: a fast worker may already have finished one of them
            # (on SQLite the select above holds no lock), and done must stay done.
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_([r[0] for r in rows]),
                    OutboxMessage.status.in_([PENDING, DELAYED, SENT]),
                )
                .values(status=SENT, sent_at=datetime.now(UTC))
            )
        if embedded:
            # The in-process worker claims a message the moment it gets it, and on SQLite its
            # claim holds the write lock for the whole task: mark the rows sent (and commit)
            # first, or this update would wait behind that task. Nothing is lost: sent rows an
            # embedded process did not finish are handed over again when it starts.
            await self._send_all(messages)
        return len(rows)

    async def _warn_about_orphans(self, stale: datetime) -> None:
        """Log pending rows older than ``stale`` whose actor this process did not declare.

        They wait for a process that has the actor's plugin; if none has (the plugin was
        uninstalled, the task renamed), they wait forever and every relay pass reads past them:
        an operator should install the plugin somewhere or delete them."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(OutboxMessage.actor, func.count())
                    .where(
                        OutboxMessage.status == PENDING,
                        OutboxMessage.created_at < stale,
                        OutboxMessage.actor.not_in(self._actors),
                    )
                    .group_by(OutboxMessage.actor)
                )
            ).all()
        for actor, count in rows:
            log.warning(
                "%d task(s) of %s have waited longer than tasks.resend_after_s for a process "
                "that declares that actor (is its plugin installed anywhere?)",
                count,
                actor,
            )

    async def _send_all(self, messages: list[dramatiq.Message[Any]]) -> None:
        """Hand messages to the broker off the loop.

        RabbitMQ confirms every publish (``confirm_delivery``) and dramatiq waits for each
        confirm, so one channel sends about one message per round trip; the batch is split over
        a few sender threads, each with its own connection and channel (dramatiq's are
        per-thread), so the confirm round trips overlap. Every message is still confirmed
        before the rows are marked sent.
        """
        if self._senders is None or len(messages) < 2 * RELAY_SENDERS:
            await asyncio.to_thread(self._send, messages)
            return
        loop = asyncio.get_running_loop()
        chunks = [messages[i::RELAY_SENDERS] for i in range(RELAY_SENDERS)]
        await asyncio.gather(
            *(loop.run_in_executor(self._senders, self._send, chunk) for chunk in chunks)
        )

    def _send(self, messages: list[dramatiq.Message[Any]]) -> None:
        if self._kind == "redis" and len(messages) > 1:
            self._send_pipelined(messages)
            return
        for message in messages:
            self._broker.enqueue(message)

    def _send_pipelined(self, messages: list[dramatiq.Message[Any]]) -> None:
        """Redis: send a relay batch in one pipeline (one round trip, not one per message).

        Each message still goes through the broker's own ``enqueue`` (its Redis message id,
        middleware, the same dispatch script with the same arguments), on a shallow copy of
        the broker whose dispatch script is bound to a non-transactional pipeline; the batch is
        written by ``execute``, which raises if any command failed, before the caller marks the
        rows sent (middleware ``after_enqueue`` hooks run as each message is queued in the
        pipeline, just before; the kernel's middleware has none). A partly written batch is
        sent again later, and a duplicate delivery finds its row already claimed. A copy, not
        the broker itself: worker threads use the broker (their acks) concurrently."""
        broker: Any = self._broker
        pipeline = broker.client.pipeline(transaction=False)
        batch = copy.copy(broker)
        batch.scripts = {
            **broker.scripts,
            "dispatch": pipeline.register_script(broker.scripts["dispatch"].script),
        }
        for message in messages:
            batch.enqueue(message)
        pipeline.execute()

    async def run_forever(
        self, stopping: asyncio.Event, wake: asyncio.Event, *, requeue_first: bool
    ) -> None:
        """Relay every ``relay_interval_s``, or as soon as ``wake`` is set, until ``stopping``;
        first (``requeue_first``, embedded mode) hand over again what the last process left."""
        interval = self._settings.relay_interval_s
        batch = self._settings.relay_batch
        sweep_every = self._settings.resend_after_s / 10
        next_sweep = time.monotonic()
        failing_since: float | None = None
        while not stopping.is_set():
            wake.clear()
            try:
                if requeue_first:
                    await self.requeue_in_memory_losses()
                    requeue_first = False  # done once; retried while the database is down
                stale_too = time.monotonic() >= next_sweep
                while await self.relay_once(stale_too=stale_too) >= batch and not stopping.is_set():
                    pass  # a full batch: more are probably waiting
                if stale_too:
                    next_sweep = time.monotonic() + sweep_every
            except Exception as exc:
                # Once per outage, not once a pass: a database down for a minute is one line
                # (with its traceback), not thousands.
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.exception(
                        "task relay failed (%s: %s); retrying every %g s, quietly until it works",
                        type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "",
                        interval,
                    )
            else:
                if failing_since is not None:
                    log.warning(
                        "task relay works again after %.0f s", time.monotonic() - failing_since
                    )
                    failing_since = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), interval)

    def close(self) -> None:
        """Stop the sender threads (after the relay loop has ended)."""
        if self._senders is not None:
            self._senders.shutdown(wait=True)
            self._senders = None
