"""What a newcomer meets in the first hour: a database that is not migrated or not running, a
busy port, a second demo seed. Each is one line that says what to do, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from pathlib import Path

import pytest
from litestar.testing import TestClient

from backplane.app import create_app
from backplane.cli._database import database_problem
from backplane.db import migrations
from backplane.plugins import PluginSet
from backplane.settings import TaskSettings, load_settings
from backplane.tasks.relay import OutboxRelay
from tests.cli import run_cli

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"

DATABASE_COMMANDS = [
    ("tenants", "list"),
    ("tenants", "create", "acme", "--owner-email", "a@example.org"),
    ("tenants", "plugin", "demo", "kitchen_sink", "off"),
    ("users", "set-password", "a@example.org", "--password-stdin"),
    ("apikeys", "create", "--tenant", "demo", "--name", "ci"),
    ("apikeys", "list", "--tenant", "demo"),
    ("keys", "rotate"),
    ("tasks", "status"),
    ("tasks", "failed"),
    ("quotas", "set", "demo", "kitchen_sink.notes", "10"),
    ("plans", "list"),
    ("subscriptions", "show", "--tenant", "demo"),
    ("billing", "close-period"),
    ("models", "list", "--tenant", "demo"),
    ("demo", "seed"),
    ("kitchen-sink-notes", "demo"),
    ("serve",),
]
"""Kernel commands that read or write the database, and a plugin's (through its kernel)."""


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_an_unmigrated_database_is_one_line_and_leaves_no_file(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "fresh" / "var"
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    result = run_cli(*command, env=env, stdin="a-long-enough-password-1\n")
    assert result.returncode == 1, result
    line = one_line(result.stderr)
    assert "the database is not migrated" in line
    assert line.endswith("run `backplane db upgrade`")
    assert not list(tmp_path.rglob("*.sqlite3*")), "an empty SQLite file was left"


@pytest.mark.parametrize(
    "command", [*DATABASE_COMMANDS, ("db", "upgrade"), ("db", "current")], ids=" ".join
)
def test_an_unreachable_database_is_one_line_naming_url_and_variable(
    data_dir: Path, command: tuple[str, ...]
) -> None:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_DATABASE_URL": UNREACHABLE,
    }
    result = run_cli(*command, env=env, stdin="a-long-enough-password-1\n")
    assert result.returncode == 1, result
    assert one_line(result.stderr) == (
        f"Error: cannot reach the database at {UNREACHABLE} (connection refused): "
        "is it running? (BACKPLANE_DATABASE_URL)"
    )


def test_the_failing_connection_is_named_and_its_password_hidden(data_dir: Path) -> None:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:2/x",
        "BACKPLANE_DB__MIGRATION_URL": "postgresql://owner:t0psecret@127.0.0.1:1/x",
    }
    line = one_line(run_cli("tenants", "list", env=env).stderr)
    assert "postgresql://owner:***@127.0.0.1:1/x" in line
    assert "BACKPLANE_DB__MIGRATION_URL" in line
    assert "s3cret" not in line
    assert "t0psecret" not in line


@pytest.mark.postgres
def test_a_postgres_database_without_tables_is_one_line(postgres_url: str) -> None:
    env = {"BACKPLANE_DATABASE_URL": postgres_url, "BACKPLANE_PLUGINS": "kitchen_sink"}
    for command in (("tenants", "list"), ("serve",), ("kitchen-sink-notes", "demo")):
        result = run_cli(*command, env=env)
        assert result.returncode == 1, result
        line = one_line(result.stderr)
        assert "the database is not migrated" in line
        assert "run `backplane db upgrade`" in line


@pytest.mark.postgres
def test_a_server_that_refuses_names_the_variable_to_check(postgres_server: str) -> None:
    """A server that answers and refuses (no such database) is not "is it running?"."""
    url = postgres_server.rsplit("/", 1)[0] + "/s18_no_such_database"
    env = {"BACKPLANE_DATABASE_URL": url, "BACKPLANE_PLUGINS": "kitchen_sink"}
    result = run_cli("tenants", "list", env=env)
    assert result.returncode == 1
    assert one_line(result.stderr) == (
        f"Error: the database at {url} refused the connection "
        '(database "s18_no_such_database" does not exist): check BACKPLANE_DATABASE_URL'
    )


def test_other_os_errors_keep_their_own_report(data_dir: Path) -> None:
    """An ``OSError`` no database driver raised (a file a command reads) is not the database's."""
    settings = load_settings({"BACKPLANE_DATA_DIR": str(data_dir)})
    with pytest.raises(FileNotFoundError) as missing:
        Path(data_dir / "missing.onnx").read_bytes()
    assert database_problem(missing.value, settings) is None
    with pytest.raises(ConnectionRefusedError) as refused:
        raise ConnectionRefusedError(111, "Connection refused")
    assert database_problem(refused.value, settings) is None


def test_a_command_that_creates_no_table_leaves_no_sqlite_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "current", env=env).returncode == 0
    assert not data_dir.exists()
    assert run_cli("db", "upgrade", env=env).returncode == 0
    with sqlite3.connect(data_dir / "backplane.sqlite3") as connection:
        assert connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0


def test_serve_and_worker_refuse_a_database_that_lacks_a_plugins_migrations(
    data_dir: Path,
) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": ""}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    with_plugin = {**env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    served = run_cli("serve", env=with_plugin)
    assert served.returncode == 1
    assert one_line(served.stderr) == (
        "Error: the database lacks migrations of kitchen_sink: run `backplane db upgrade`"
    )
    worker = run_cli("worker", env={**with_plugin, "BACKPLANE_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert worker.returncode == 1
    assert "lacks migrations of kitchen_sink" in one_line(worker.stderr)


def test_serve_on_a_busy_port_names_the_option_and_the_variable(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), env=env)
        by_setting = run_cli("serve", env={**env, "BACKPLANE_SERVER__PORT": str(port)})
    for refused in (result, by_setting):
        assert refused.returncode == 1
        line = one_line(refused.stderr)
        assert f"port {port} on 127.0.0.1 is in use" in line
        assert "--port" in line
        assert "BACKPLANE_SERVER__PORT" in line


def test_ready_is_503_naming_the_branch_whose_migrations_are_missing(
    migrated: PluginSet,
) -> None:
    migrations.purge_branch(migrated, "kitchen_sink")
    with TestClient(app=create_app(migrated.settings, migrated)) as client:
        ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["database"] == {
        "status": "error",
        "detail": "the database lacks migrations of kitchen_sink: run `backplane db upgrade`",
    }


def test_a_second_demo_seed_says_how_to_get_new_credentials(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert run_cli("demo", "seed", env=env).returncode == 0
    second = run_cli("demo", "seed", env=env)
    assert second.returncode == 0
    commands = [line.split()[1:] for line in second.stdout.splitlines() if "backplane " in line]
    assert [c[:2] for c in commands] == [["users", "set-password"], ["apikeys", "create"]]
    set_password, create_key = commands  # what it advises works as printed
    password = run_cli(*set_password, "--password-stdin", env=env, stdin="a-new-pass-phrase-9\n")
    assert password.returncode == 0, password
    key = run_cli(*create_key, env=env)
    assert key.returncode == 0, key
    assert "bp_" in key.stdout


def test_the_relay_logs_an_outage_once_and_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A database that is away for many relay passes is one error, then one line when it is
    back, not a traceback a pass."""
    relay = OutboxRelay(
        TaskSettings(relay_interval_s=0.01),
        "embedded",
        None,
        [],
        None,  # type: ignore[arg-type]
    )
    passes = 0

    async def relay_once(*, stale_too: bool = True) -> int:
        nonlocal passes
        passes += 1
        if passes <= 20:
            raise OSError("Connect call failed ('127.0.0.1', 1)")
        if passes >= 25:
            stopping.set()
        return 0

    relay.relay_once = relay_once  # type: ignore[method-assign]
    stopping, wake = asyncio.Event(), asyncio.Event()
    with caplog.at_level(logging.INFO, logger="backplane.tasks.relay"):
        asyncio.run(relay.run_forever(stopping, wake, requeue_first=False))
    messages = [r.getMessage() for r in caplog.records if r.name == "backplane.tasks.relay"]
    assert passes >= 25
    assert len(messages) == 2, messages
    assert messages[0].startswith("task relay failed (OSError: Connect call failed")
    assert messages[1].startswith("task relay works again after")


def test_the_scheduler_logs_an_outage_once_and_the_recovery(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduler's ticks while the database is away are one error, then one line when it
    is back (as the relay's passes)."""
    from dramatiq.brokers.stub import StubBroker

    from backplane.loading import load_plugins
    from backplane.tasks.runtime import TaskRuntime
    from tests.conftest import make_settings

    settings = make_settings(data_dir, {"BACKPLANE_TASKS__SCHEDULER_INTERVAL_S": "0.01"})
    runtime = TaskRuntime(load_plugins(settings), broker=StubBroker())
    ticks = 0

    async def schedule_once() -> None:
        nonlocal ticks
        ticks += 1
        if ticks >= 25:
            runtime._stopping.set()
        if ticks <= 20:
            raise OSError("Connect call failed ('127.0.0.1', 1)")

    runtime.schedule_once = schedule_once  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="backplane.tasks.runtime"):
        asyncio.run(runtime._schedule_forever())
    messages = [r.getMessage() for r in caplog.records if r.name == "backplane.tasks.runtime"]
    assert ticks >= 25
    assert messages == [
        "task scheduler failed; retrying quietly until it works",
        "task scheduler works again",
    ]
