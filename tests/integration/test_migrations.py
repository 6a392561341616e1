"""Migrations per plugin branch, on a fresh SQLite file and on real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect

from backplane.db import migrations
from backplane.db.engine import create_engine
from backplane.loading import load_plugins
from backplane.settings import Settings
from tests.cli import run_cli, run_cli_process
from tests.conftest import make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    if request.param == "postgres":
        env["BACKPLANE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return env


def table_names(settings: Settings) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        finally:
            await engine.dispose()
        return set(names)

    return asyncio.run(read())


def test_cli_upgrade_then_check_succeed_on_a_fresh_database(database_env: dict[str, str]) -> None:
    env = {**database_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    upgraded = run_cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    # A real process: in this one, other tests may have imported tables of plugins this
    # command does not load (they share ``backplane.Base.metadata``), which check would report.
    checked = run_cli_process("db", "check", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "models and migrations agree" in checked.stdout
    current = run_cli("db", "current", env=env)
    assert re.search(r"core_\d{4} \(head\)", current.stdout), current.stdout
    assert re.search(r"kitchen_sink_\d{4} \(head\)", current.stdout), current.stdout


def test_plugin_table_exists_only_after_its_branch_is_applied_and_purge_removes_it(
    database_env: dict[str, str],
) -> None:
    kernel_only = make_settings(
        Path(database_env["BACKPLANE_DATA_DIR"]), {**database_env, "BACKPLANE_PLUGINS": ""}
    )
    migrations.upgrade(load_plugins(kernel_only))
    assert "backplane_kernel_state" in table_names(kernel_only)
    assert "kitchen_sink_notes" not in table_names(kernel_only)

    # Enabling the plugin later: upgrade applies only its branch.
    env = {**database_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    upgraded = run_cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "kitchen_sink_0001" in upgraded.stderr
    assert "core_0001" not in upgraded.stderr
    assert {"backplane_kernel_state", "kitchen_sink_notes"} <= table_names(kernel_only)

    refused = run_cli("plugins", "purge", "kitchen_sink", env=env)
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    assert "kitchen_sink_notes" in table_names(kernel_only)

    purged = run_cli("plugins", "purge", "kitchen_sink", "--yes", env=env)
    assert purged.returncode == 0, purged.stderr
    tables = table_names(kernel_only)
    assert "kitchen_sink_notes" not in tables
    assert "backplane_kernel_state" in tables
    current = run_cli("db", "current", env=env)
    assert "kitchen_sink_0001" not in current.stdout
    assert re.search(r"core_\d{4} \(head\)", current.stdout), current.stdout


def test_check_fails_when_the_database_differs_from_the_models(
    database_env: dict[str, str],
) -> None:
    env = {**database_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    settings = make_settings(Path(database_env["BACKPLANE_DATA_DIR"]), env)

    async def add_column() -> None:
        from sqlalchemy import text

        engine = create_engine(settings)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("ALTER TABLE kitchen_sink_notes ADD COLUMN stray INTEGER")
                )
        finally:
            await engine.dispose()

    asyncio.run(add_column())
    checked = run_cli("db", "check", env=env)
    assert checked.returncode == 1
    assert "db check failed" in checked.stderr
    assert "stray" in checked.stderr


def test_downgrade_and_history(database_env: dict[str, str]) -> None:
    env = {**database_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    history = run_cli("db", "history", env=env)
    assert "core_0001" in history.stdout
    assert "kitchen_sink_0001" in history.stdout
    down = run_cli("db", "downgrade", "kitchen_sink@base", env=env)
    assert down.returncode == 0, down.stderr
    assert "kitchen_sink_0001" not in run_cli("db", "current", env=env).stdout


def test_upgrade_with_revisions_of_a_disabled_plugin_explains_itself(
    database_env: dict[str, str],
) -> None:
    assert (
        run_cli(
            "db", "upgrade", env={**database_env, "BACKPLANE_PLUGINS": "kitchen_sink"}
        ).returncode
        == 0
    )
    result = run_cli("db", "upgrade", env={**database_env, "BACKPLANE_PLUGINS": ""})
    assert result.returncode == 1
    assert re.search(r"kitchen_sink_\d{4}", result.stderr), result.stderr
    assert "not enabled" in result.stderr
    assert "Traceback" not in result.stderr
