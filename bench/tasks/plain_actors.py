"""The plain side of ``bench/tasks``: a no-op dramatiq actor on a plain broker.

The broker is built exactly as the kernel builds its own (``backplane.tasks.broker``):
``RabbitmqBroker(url, confirm_delivery=True)`` or ``RedisBroker(url, heartbeat_timeout=60000)``,
dramatiq's default middleware plus ``CurrentMessage``, so what differs between the two sides is
only the kernel's actor wrapper and its outbox. No Backplane import here.

Worker processes import this module (``python -m dramatiq plain_actors --path bench/tasks``),
reading the broker URL from ``BENCH_TASKS_BROKER_URL``; the driver calls :func:`build`.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

QUEUE = "bench_tasks_plain"
REDIS_HEARTBEAT_TIMEOUT_MS = 60_000  # the kernel's default tasks.redis_heartbeat_timeout_ms


def build(url: str) -> tuple[dramatiq.Broker, Any]:
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

    actor = dramatiq.Actor(
        noop, broker=broker, actor_name="bench_noop", queue_name=QUEUE, priority=0, options={}
    )
    return broker, actor


if _url := os.environ.get("BENCH_TASKS_BROKER_URL"):
    broker, noop = build(_url)
    dramatiq.set_broker(broker)
