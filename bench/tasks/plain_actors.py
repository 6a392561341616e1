"""The plain sides of ``bench/tasks``: dramatiq actors on a plain broker, no Backplane import.

- ``bench_noop`` does nothing: dramatiq's own cost per message.
- ``bench_mark_done`` does the database work that running a task exactly once needs, and no
  more: in one PostgreSQL transaction it marks a pre-inserted row done if it is not done yet
  (``UPDATE ... WHERE id = %s AND status <> 'done' RETURNING ...``); a duplicate delivery finds
  nothing to mark (or waits on the row lock while another delivery holds it). That is the
  kernel's claim, and so ``BEGIN``, the ``UPDATE`` and ``COMMIT``: the same three round trips.

Why psycopg 3 and its pool (``psycopg_pool.ConnectionPool``, one per worker process, as many
connections as the process has worker threads): dramatiq actors are plain functions run in
worker threads, and the library a developer writing such an actor reaches for is PostgreSQL's
synchronous driver, with its C implementation (``psycopg[binary]``) and its pool; it waits on
the network with the GIL released, so the threads overlap their round trips. asyncpg (the
kernel's driver) would need an event loop in every thread or one shared loop the threads hand
their work to, which is the kernel's own machinery rather than the work both sides do.
``pool.connection()`` begins the transaction with the first statement and commits when the block
ends; returning an idle connection to the pool costs no statement.

The broker is built exactly as the kernel builds its own (``backplane.tasks.broker``):
``RabbitmqBroker(url, confirm_delivery=True)`` or ``RedisBroker(url, heartbeat_timeout=60000)``,
dramatiq's default middleware plus ``CurrentMessage``.

Worker processes import this module (``python -m dramatiq plain_actors --path bench/tasks``),
reading the broker URL from ``BENCH_TASKS_BROKER_URL`` and, for ``bench_mark_done``, the
database from ``BENCH_TASKS_DATABASE_URL`` (pool size ``BENCH_TASKS_POOL_SIZE``); the driver
calls :func:`build`.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

QUEUE = "bench_tasks_plain"
DB_QUEUE = "bench_tasks_plain_db"
REDIS_HEARTBEAT_TIMEOUT_MS = 60_000  # the kernel's default tasks.redis_heartbeat_timeout_ms
TABLE = "bench_plain_tasks"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id uuid PRIMARY KEY,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    payload jsonb NOT NULL DEFAULT '{{}}',
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status)
"""
"""The driver creates it; rows are inserted (``status = 'sent'``) before a timed run."""
MARK_DONE = f"""
UPDATE {TABLE} SET status = 'done', attempts = attempts + 1, finished_at = now()
WHERE id = %s AND status <> 'done'
RETURNING payload
"""


def build(url: str, pool: Any = None) -> tuple[dramatiq.Broker, Any, Any]:
    """The broker and its two actors; ``pool`` is what ``bench_mark_done`` takes connections
    from (None in the driver, which only sends)."""
    broker: dramatiq.Broker
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS)
    broker.add_middleware(CurrentMessage())

    def noop() -> None:
        """Does nothing."""

    def mark_done(row_id: str) -> None:
        """Marks the row done, once: a duplicate delivery finds nothing to mark."""
        with pool.connection() as connection:
            connection.execute(MARK_DONE, (row_id,)).fetchone()

    options: dict[str, Any] = {}
    plain = dramatiq.Actor(
        noop, broker=broker, actor_name="bench_noop", queue_name=QUEUE, priority=0,
        options=options,
    )  # fmt: skip
    plain_db = dramatiq.Actor(
        mark_done, broker=broker, actor_name="bench_mark_done", queue_name=DB_QUEUE,
        priority=0, options=options,
    )  # fmt: skip
    return broker, plain, plain_db


if _url := os.environ.get("BENCH_TASKS_BROKER_URL"):
    _pool = None
    if _database_url := os.environ.get("BENCH_TASKS_DATABASE_URL"):
        from psycopg_pool import ConnectionPool

        _size = int(os.environ.get("BENCH_TASKS_POOL_SIZE", "4"))
        _pool = ConnectionPool(_database_url, min_size=_size, max_size=_size, open=True)
    broker, noop, mark_done = build(_url, _pool)
    dramatiq.set_broker(broker)
