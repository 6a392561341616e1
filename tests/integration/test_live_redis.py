"""Live events through real Redis: between processes, with resumption and tenant isolation.

The acceptance run: a client subscribed on a ``backplane serve`` process receives events that
a task publishes on a ``backplane worker`` process, a reconnect with ``Last-Event-ID`` gets
what it missed, and tenant B's stream never shows A's events. Then the Redis backend on its
own: two hubs (as two processes) sharing streams, the kept window by count and by age.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from backplane.live import LiveHub
from backplane.live._backend import START, Listener
from backplane.live.hub import tenant_channel
from backplane.live.redis_streams import KEY_PREFIX
from tests.cli import BACKPLANE, process, run_cli, serving
from tests.conftest import make_settings
from tests.live_helpers import open_stream, publish
from tests.waiting import wait_for

pytestmark = pytest.mark.redis


def _tenant(env: dict[str, str], slug: str) -> dict[str, Any]:
    made = run_cli("tenants", "create", slug, "--owner-email", f"o@{slug}.org", "--json", env=env)
    assert made.returncode == 0, made.stderr
    tenant: dict[str, Any] = json.loads(made.stdout)
    tenant["headers"] = {"Authorization": f"Bearer {tenant['api_key']}"}
    return tenant


def _purge_broker(env: dict[str, str]) -> None:
    """Leftover task messages of other tests must not reach this test's worker."""
    from backplane.loading import load_plugins
    from backplane.settings import load_settings
    from backplane.tasks.broker import make_broker
    from tests.app_helpers import task_runtime

    settings = load_settings(environ=env)
    broker = make_broker(settings)
    task_runtime(load_plugins(settings), broker)
    broker.flush_all()
    broker.close()


@pytest.mark.slow
def test_a_task_on_a_worker_reaches_a_stream_on_the_server_through_redis(
    data_dir: Path, tmp_path: Path, redis_tasks_url: str, redis_live_url: str
) -> None:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_BROKER_URL": redis_tasks_url,
        "BACKPLANE_LIVE__REDIS_URL": redis_live_url,
        "BACKPLANE_LIVE__KEEPALIVE_S": "1",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.1",
        "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
    }
    assert run_cli("db", "upgrade", env=env).returncode == 0
    a, b = _tenant(env, "acme"), _tenant(env, "globex")
    _purge_broker(env)
    live = redis.Redis.from_url(redis_live_url)
    a_stream_key = KEY_PREFIX + tenant_channel(uuid.UUID(a["tenant_id"]))
    worker_args = [BACKPLANE, "worker", "--processes", "1", "--threads", "2"]
    with (
        serving(env, tmp_path / "serve.log", timeout=30) as server,
        process(worker_args, env, tmp_path / "worker.log"),
        open_stream(server.base, b["headers"], timeout=30) as b_stream,
    ):
        with open_stream(server.base, a["headers"], timeout=30) as a_stream:
            publish(server.base, a["headers"], "first", {"n": 1}, via_task=True)
            first = a_stream.next_event()
            assert (first.event, first.json["data"]) == ("kitchen_sink.first", {"n": 1})
        # Disconnected: two more events, published by the worker's task.
        publish(server.base, a["headers"], "second", {"n": 2}, via_task=True)
        publish(server.base, a["headers"], "third", {"n": 3}, via_task=True)
        wait_for(
            lambda: live.xlen(a_stream_key) == 3,
            message="the worker's tasks to publish into Redis",
            timeout=30,
        )
        with open_stream(server.base, a["headers"], last_event_id=first.id) as a_stream:
            missed = a_stream.events(2)
            # Two tasks, run at once by the worker's two threads: either may commit first.
            assert sorted((e.event, e.json["data"]["n"]) for e in missed) == [
                ("kitchen_sink.second", 2),
                ("kitchen_sink.third", 3),
            ]
        publish(server.base, b["headers"], "marker", via_task=True)
        # B's stream was open all along: its first event is its own.
        assert b_stream.next_event().event == "kitchen_sink.marker"
    live.close()


def _hub(url: str, **live: Any) -> LiveHub:
    env = {f"BACKPLANE_LIVE__{k.upper()}": str(v) for k, v in live.items()}
    return LiveHub(make_settings(Path("/nonexistent"), {"BACKPLANE_LIVE__REDIS_URL": url, **env}))


def test_two_processes_share_streams_and_history(redis_live_url: str) -> None:
    """Two hubs stand for two processes: one listens, the other publishes from another thread
    and event loop (as a task runtime does); the history serves a late reader."""
    tenant = uuid.uuid4()
    channel = tenant_channel(tenant)

    async def scenario() -> None:
        server, worker = _hub(redis_live_url), _hub(redis_live_url)
        try:
            assert await server.backend.head(channel) == START
            listener = Listener(100)
            await server.backend.listen(channel, listener)
            ids: list[str] = []
            publisher = threading.Thread(
                target=lambda: ids.extend(
                    asyncio.run(_publish_many(worker, tenant, ["a", "b", "c"]))
                )
            )
            publisher.start()
            received = [await asyncio.wait_for(listener.queue.get(), 10) for _ in range(3)]
            publisher.join()
            assert [item[1] for item in received if item] == ids
            assert await server.backend.head(channel) == ids[-1]
            entries, whole = await server.backend.since(channel, ids[0])
            assert whole
            assert [entry_id for entry_id, _ in entries] == ids[1:]
            server.backend.unlisten(channel, listener)
        finally:
            await server.close()
            await worker.close()

    asyncio.run(scenario())


async def _publish_many(hub: LiveHub, tenant: uuid.UUID, kinds: list[str]) -> list[str]:
    return [await hub.publish(tenant, hub.encode(f"t.{kind}", {}, user=False)) for kind in kinds]


def test_the_kept_window_is_bounded_by_count_and_by_age(redis_live_url: str) -> None:
    tenant = uuid.uuid4()
    channel = tenant_channel(tenant)

    async def scenario() -> None:
        hub = _hub(redis_live_url, history_events=3, history_s=1)
        try:
            ids = await _publish_many(hub, tenant, [f"e{n}" for n in range(300)])
            kept = redis.Redis.from_url(redis_live_url).xlen(KEY_PREFIX + channel)
            assert kept < 300  # trimmed (approximately: whole nodes at a time)
            _, whole = await hub.backend.since(channel, ids[0])
            assert not whole  # fell out of the window: the stream says so
            recent, whole = await hub.backend.since(channel, ids[-2])
            assert whole
            assert [entry_id for entry_id, _ in recent] == ids[-1:]
            await asyncio.sleep(1.2)
            stale, whole = await hub.backend.since(channel, ids[-2])
            assert (stale, whole) == ([], False)  # older than history_s
        finally:
            await hub.close()

    asyncio.run(scenario())
