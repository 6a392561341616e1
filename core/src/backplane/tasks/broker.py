"""Choosing the dramatiq broker from ``BACKPLANE_BROKER_URL``, and checking that it answers."""

from __future__ import annotations

import asyncio

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage

from backplane.settings import Settings, SettingsError, redact_url

EMBEDDED = "embedded"


def broker_kind(settings: Settings) -> str:
    url = settings.broker_url
    if not url:
        return EMBEDDED
    if url.startswith(("amqp://", "amqps://")):
        return "rabbitmq"
    if url.startswith(("redis://", "rediss://")):
        return "redis"
    raise SettingsError(
        f"BACKPLANE_BROKER_URL: expected amqp://... or redis://..., got {redact_url(url)!r}"
    )


def make_broker(settings: Settings) -> dramatiq.Broker:
    """A broker with dramatiq's default middleware plus ``CurrentMessage``.

    Retries and time limits are enforced per actor by dramatiq's own middleware; the kernel adds
    nothing to the broker itself, so plain dramatiq tooling keeps working against its queues.
    """
    kind = broker_kind(settings)
    broker: dramatiq.Broker
    if kind == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.broker_url, confirm_delivery=True)
    elif kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.broker_url, heartbeat_timeout=settings.tasks.redis_heartbeat_timeout_ms
        )
    else:
        broker = StubBroker()
    broker.add_middleware(CurrentMessage())
    return broker


async def broker_problem(settings: Settings, timeout_s: float) -> str | None:
    """None when the broker answers within ``timeout_s`` (embedded always does)."""
    kind = broker_kind(settings)
    if kind == EMBEDDED:
        return None

    def probe() -> None:
        url = settings.broker_url or ""
        if kind == "redis":
            import redis

            redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            ).ping()
        else:
            import pika

            parameters = pika.URLParameters(url)
            parameters.socket_timeout = timeout_s
            parameters.blocked_connection_timeout = timeout_s
            pika.BlockingConnection(parameters).close()

    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout_s + 1)
    except Exception as exc:  # noqa: BLE001 - reported by /health/ready
        return f"{type(exc).__name__}: {exc}"[:300]
    return None
