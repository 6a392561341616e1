"""The ``backplane`` command as an operator meets it, with real output: in process through
click's runner, and as a real process where serving is the point."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli import free_port, run_cli, run_cli_process, serving
from tests.unit.test_plugins import EXPECTED_SKIPS


def test_version(data_dir: Path) -> None:
    result = run_cli("--version", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0
    assert result.stdout.strip() == "backplane, version 0.1.0"


def test_help_lists_kernel_and_plugin_commands(data_dir: Path) -> None:
    result = run_cli("--help", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0
    for command in ("serve", "db", "plugins", "demo", "kitchen-sink-hello"):
        assert command in result.stdout


def test_plugin_command_runs(data_dir: Path) -> None:
    result = run_cli("kitchen-sink-hello", "ada", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0
    assert result.stdout == "hello, ada, from kitchen_sink\n"


def test_plugin_command_reaches_the_database_through_its_kernel(data_dir: Path) -> None:
    """``pass_kernel`` hands the command its plugin's kernel: its validated settings and a
    tenant's session by slug; an unknown tenant is a clear error, not a traceback."""
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGIN__KITCHEN_SINK__GREETING": "hi",
    }
    assert run_cli("db", "upgrade", env=env).returncode == 0
    assert run_cli("demo", "seed", env=env).returncode == 0
    result = run_cli("kitchen-sink-notes", "demo", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi: demo has 1 notes\n"
    missing = run_cli("kitchen-sink-notes", "nobody", env=env)
    assert missing.returncode == 1
    assert "no tenant nobody" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_each_invocation_reads_its_own_environment(data_dir: Path) -> None:
    """Settings, plugins and plugin commands loaded by one invocation do not outlive it in the
    process (``main.reset``): what the in-process runner relies on to behave like a shell."""
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    kernel_only = {**env, "BACKPLANE_PLUGINS": ""}
    assert "kitchen-sink-hello" in run_cli("--help", env=env).stdout
    assert "kitchen-sink-hello" not in run_cli("--help", env=kernel_only).stdout
    assert run_cli("kitchen-sink-hello", "ada", env=kernel_only).returncode == 2
    assert run_cli("kitchen-sink-hello", "ada", env=env).returncode == 0
    broken = run_cli("plugins", "list", env={**env, "BACKPLANE_SERVER__PORT": "eighty"})
    assert broken.returncode == 1
    assert run_cli("plugins", "list", env=env).returncode == 0


def test_invalid_setting_is_reported_without_traceback(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_SERVER__PORT": "eighty"}
    result = run_cli("plugins", "list", env=env)
    assert result.returncode == 1
    assert "BACKPLANE_SERVER__PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_plugins_list_json_reports_each_skip_reason(data_dir: Path) -> None:
    result = run_cli("plugins", "list", "--json", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["core"]["status"] == "loaded"
    assert records["kitchen_sink"]["status"] == "loaded"
    assert "register_routes" in records["kitchen_sink"]["hooks"]
    for name, (code, fragment) in EXPECTED_SKIPS.items():
        assert records[name]["status"] == "skipped"
        assert records[name]["reason_code"] == code.value
        assert fragment in records[name]["reason"]


def test_plugins_list_table(data_dir: Path) -> None:
    result = run_cli("plugins", "list", env={"BACKPLANE_DATA_DIR": str(data_dir)})
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "VERSION", "STATUS"]
    assert any(line.startswith("incompatible") and "skipped" in line for line in lines)


def test_purge_refuses_the_kernel_and_unknown_plugins(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    kernel = run_cli("plugins", "purge", "core", "--yes", env=env)
    assert kernel.returncode == 2
    assert "kernel cannot be purged" in kernel.stderr
    broken = run_cli("plugins", "purge", "incompatible", "--yes", env=env)
    assert broken.returncode == 1
    assert "not loaded" in broken.stderr
    assert ">=99.0" in broken.stderr


@pytest.mark.slow
def test_server_serves_the_good_plugin_while_broken_ones_are_skipped(
    data_dir: Path, tmp_path: Path
) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir)}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli(
        "tenants", "create", "acme", "--owner-email", "a@example.org", "--json", env=env
    )
    assert created.returncode == 0, created.stderr
    api_key = json.loads(created.stdout)["api_key"]
    with serving(env, tmp_path / "serve.log") as server:
        ready = httpx.get(f"{server.base}/health/ready", timeout=5)
        statuses = {p["name"]: p["status"] for p in ready.json()["plugins"]}
        assert statuses["kitchen_sink"] == "loaded"
        assert statuses["broken_import"] == "skipped"
        anonymous = httpx.get(f"{server.base}/api/kitchen_sink/greeting", timeout=5)
        assert anonymous.status_code == 401
        greeting = httpx.get(
            f"{server.base}/api/kitchen_sink/greeting",
            timeout=5,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert greeting.json() == {"greeting": "hello"}


@pytest.mark.slow
def test_strict_mode_start_up_fails_naming_the_plugin(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_STRICT_PLUGINS": "1"}
    result = run_cli_process("serve", "--port", str(free_port()), env=env, timeout=60)
    assert result.returncode == 1
    for name in EXPECTED_SKIPS:
        assert name in result.stderr
    assert "strict plugin mode" in result.stderr


def test_demo_seed_runs_once(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    first = run_cli("demo", "seed", env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "demo data seeded"
    assert "log in as owner@demo.example.org with password" in lines[1]
    assert lines[2].startswith("  API key (shown once): bp_")
    second = run_cli("demo", "seed", env=env)
    assert second.stdout.startswith("demo data already present")
    assert "bp_" not in second.stdout
