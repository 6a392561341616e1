"""Kill -9 in the middle of a task: it completes after a restart, exactly once in effect.

Embedded: ``backplane serve`` is killed and started again. RabbitMQ and Redis: a
``backplane worker`` process group is killed and started again (RabbitMQ redelivers the
unacknowledged message; for Redis the relay hands a long-unfinished task over again).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app_helpers import task_runtime
from tests.cli import BACKPLANE, free_port, kill_9, process, run_cli, serving
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # server and worker processes, killed and restarted

SLOW_SECONDS = 4.0


def task_state(env: dict[str, str]) -> dict[str, Any]:
    listed = run_cli("tasks", "status", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    return {r["status"]: r["count"] for r in rows if r["actor"] == "kitchen_sink.slow_log"}


@pytest.fixture
def setup(data_dir: Path) -> dict[str, Any]:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.1",
        "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
        # Each check is a fresh `backplane` process; on a loaded machine (CI runs two test
        # processes beside these servers) PostgreSQL once took longer than the default 5 s to
        # answer one's connection.
        "BACKPLANE_DB__CONNECT_TIMEOUT_S": "30",
    }
    return env


def _prepare(env: dict[str, str]) -> str:
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli("tenants", "create", "acme", "--owner-email", "a@acme.org", "--json", env=env)
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["api_key"])


def _query(env: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    import asyncio

    from sqlalchemy import text

    from backplane.db.engine import create_engine
    from tests.conftest import make_settings

    # The tables' owner when there is one: the application's role sees no tenant's rows here.
    url = env.get("BACKPLANE_DB__MIGRATION_URL") or env.get("BACKPLANE_DATABASE_URL")
    settings = make_settings(
        Path(env["BACKPLANE_DATA_DIR"]), {"BACKPLANE_DATABASE_URL": url} if url else {}
    )

    async def read() -> list[tuple[Any, ...]]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                return [tuple(row) for row in await connection.execute(text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _log_rows(env: dict[str, str]) -> list[tuple[str, int]]:
    rows = _query(env, "SELECT label, attempt FROM kitchen_sink_task_log ORDER BY id")
    return [(str(label), int(attempt)) for label, attempt in rows]


def _picked_up(env: dict[str, str]) -> bool:
    """The slow task's row is handed over (read directly, the quickest look: the kill must
    land while the task still sleeps)."""
    rows = _query(
        env, "SELECT status FROM backplane_task_outbox WHERE actor = 'kitchen_sink.slow_log'"
    )
    return [status for (status,) in rows] == ["sent"]


def _enqueue_slow(base: str, key: str) -> str:
    """Enqueue the slow task through the HTTP API (the outbox, in the request's transaction)."""
    response = httpx.post(
        f"{base}/api/kitchen_sink/jobs",
        timeout=10,
        headers={"Authorization": f"Bearer {key}"},
        json={"label": "survivor", "seconds": SLOW_SECONDS},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["message_id"])


def test_embedded_server_killed_mid_task_finishes_it_after_restart(
    setup: dict[str, str], tmp_path: Path
) -> None:
    env = setup
    key = _prepare(env)
    port = free_port()
    log = tmp_path / "serve.log"
    with serving(env, log, port=port, timeout=30) as server:
        _enqueue_slow(server.base, key)
        wait_for(lambda: _picked_up(env), message="the task's pick-up", timeout=20)
        time.sleep(1.0)  # inside the task's sleep
        kill_9(server.process)
    assert _log_rows(env) == []
    with serving(env, log, port=port, timeout=30):
        wait_for(
            lambda: task_state(env).get("done"),
            message="the task's completion after the restart",
            timeout=30 + SLOW_SECONDS,
        )
    assert _log_rows(env) == [("survivor", 1)]


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def test_worker_killed_mid_task_finishes_it_exactly_once(
    request: pytest.FixtureRequest,
    broker: str,
    database: str,
    setup: dict[str, str],
    tmp_path: Path,
) -> None:
    """The killed worker's transaction held the task's row (on PostgreSQL its row lock); the
    database rolls it back when the connection drops, and the next delivery runs the task."""
    url = request.getfixturevalue("rabbitmq_url" if broker == "rabbitmq" else "redis_tasks_url")
    env = {**setup, "BACKPLANE_BROKER_URL": url, "BACKPLANE_TASKS__RESEND_AFTER_S": "6"}
    if database == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    key = _prepare(env)
    _purge(env)
    worker_args = [BACKPLANE, "worker", "--processes", "1", "--threads", "2"]
    with serving(env, tmp_path / "serve.log", timeout=30) as server:
        with process(worker_args, env, tmp_path / "worker.log") as worker:
            _enqueue_slow(server.base, key)
            wait_for(lambda: _picked_up(env), message="the hand-over", timeout=20)
            time.sleep(1.5)  # the worker is inside the task's sleep
            kill_9(worker)
        assert _log_rows(env) == []
        with process(worker_args, env, tmp_path / "worker.log"):
            wait_for(
                lambda: task_state(env).get("done"),
                message="the task's completion after the worker restarted",
                timeout=60,
            )
            time.sleep(1.0)  # let any duplicate delivery arrive and be acknowledged
    rows = _log_rows(env)
    assert [label for label, _attempt in rows] == ["survivor"]  # once in effect


def _purge(env: dict[str, str]) -> None:
    """Leftovers of other tests must not be delivered to this test's worker."""
    from backplane.loading import load_plugins
    from backplane.settings import load_settings
    from backplane.tasks.broker import make_broker

    settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
    broker = make_broker(settings)
    task_runtime(load_plugins(settings), broker)  # declares the queues on the broker
    if hasattr(broker, "channel"):
        for queue in list(broker.get_declared_queues()):
            broker.declare_queue(queue, ensure=True)
    broker.flush_all()
    broker.close()
