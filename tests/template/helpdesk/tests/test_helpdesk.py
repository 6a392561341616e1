"""The helpdesk's own tests, each on SQLite and on PostgreSQL (skipped, saying why, without a
server: set ``BACKPLANE_TEST_POSTGRES_URL``). Written against ``backplane``'s documented API
only, which the last test checks."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import backplane
import pytest
from backplane.testing import CHEAP_PASSWORD_HASHING, SeededTenant, seed_tenant
from litestar import Litestar
from litestar.testing import TestClient

TICKETS = "/api/helpdesk/tickets"
# What a plugin may import from the kernel: the package's __all__ and these documented modules.
DOCUMENTED_MODULES = {"backplane", "backplane.testing"}
PLUGIN_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgres"])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Every fixture of ``backplane.testing`` on either database; PostgreSQL through
    ``backplane_postgres_database``, which skips (saying why) when no server is configured."""
    environ = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "helpdesk",
        # The app's scheduler runs the nightly job in each tenant once as it starts: a year
        # keeps that run from closing these tests' tickets; the runs they make use a week.
        "BACKPLANE_PLUGIN__HELPDESK__AUTO_CLOSE_DAYS": "365",
        **CHEAP_PASSWORD_HASHING,
    }
    if request.param == "postgres":
        environ |= request.getfixturevalue("backplane_postgres_database")
    return environ


def cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``backplane`` command as an operator would, on the test's database."""
    command = shutil.which("backplane", path=str(Path(sys.executable).parent)) or "backplane"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPLANE_")}
    return subprocess.run(
        [command, *args],
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def close_stale(environ: dict[str, str], tenant: str) -> str:
    """``backplane helpdesk close-stale TENANT`` with ``auto_close_days = 7``: the job, run now."""
    week = environ | {"BACKPLANE_PLUGIN__HELPDESK__AUTO_CLOSE_DAYS": "7"}
    ran = cli(week, "helpdesk", "close-stale", tenant)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def open_tickets(client: TestClient[Litestar], headers: dict[str, str], *ages: int) -> None:
    for age in ages:
        body = {"subject": f"{age} days old", "created_at": days_ago(age)}
        made = client.post(TICKETS, json=body, headers=headers)
        assert made.status_code == 201, made.text


def closed_subjects(client: TestClient[Litestar], headers: dict[str, str]) -> list[str]:
    listed = client.get(TICKETS, headers=headers)
    assert listed.status_code == 200, listed.text
    return [t["subject"] for t in listed.json() if t["closed_at"] is not None]


def test_the_job_closes_old_tickets_in_its_tenant_and_no_other(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
) -> None:
    other = seed_tenant(backplane_client, "other-tenant")
    mine, theirs = backplane_tenant.headers, other.headers
    open_tickets(backplane_client, mine, 30, 8, 1)
    open_tickets(backplane_client, theirs, 30, 9)

    slug = backplane_tenant.slug
    assert close_stale(backplane_environ, slug) == f"{slug}: 2 ticket(s) closed"
    assert closed_subjects(backplane_client, mine) == ["30 days old", "8 days old"]
    assert closed_subjects(backplane_client, theirs) == []  # as old, but not this tenant's run

    assert close_stale(backplane_environ, slug) == f"{slug}: 0 ticket(s) closed"
    assert close_stale(backplane_environ, other.slug) == f"{other.slug}: 2 ticket(s) closed"
    assert closed_subjects(backplane_client, theirs) == ["30 days old", "9 days old"]


def test_the_cli_counts_one_tenants_tickets(
    backplane_client: TestClient[Litestar],
    backplane_tenant: SeededTenant,
    backplane_environ: dict[str, str],
) -> None:
    open_tickets(backplane_client, backplane_tenant.headers, 0, 0, 0)
    first = backplane_client.get(TICKETS).json()[0]["id"]
    assert backplane_client.post(f"{TICKETS}/{first}/close").status_code == 201
    other = seed_tenant(backplane_client, "other-tenant")
    open_tickets(backplane_client, other.headers, 0)

    counted = cli(backplane_environ, "helpdesk", "tickets", backplane_tenant.slug)
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == f"{backplane_tenant.slug}: 2 open, 1 closed"
    unknown = cli(backplane_environ, "helpdesk", "tickets", "nobody")
    assert unknown.returncode != 0


def test_guards_and_tenant_isolation_of_the_routes(
    backplane_client: TestClient[Litestar], backplane_plugins: object
) -> None:
    open_tickets(backplane_client, {}, 0)
    mine = backplane_client.get(TICKETS).json()[0]
    assert mine["created_at"].endswith(("Z", "+00:00"))  # aware on both databases
    viewer = seed_tenant(backplane_plugins, "viewers", key_role="viewer")
    assert backplane_client.get(TICKETS, headers=viewer.headers).json() == []
    refused = backplane_client.post(TICKETS, json={"subject": "x"}, headers=viewer.headers)
    assert refused.status_code == 403
    assert "helpdesk.tickets.write" in refused.text
    closing = backplane_client.post(f"{TICKETS}/{mine['id']}/close", headers=viewer.headers)
    assert closing.status_code == 403
    assert backplane_client.post(TICKETS, json={"subject": ""}).status_code == 400
    naive = {"subject": "x", "created_at": "2026-01-01T00:00:00"}
    assert backplane_client.post(TICKETS, json=naive).status_code == 400


def test_a_bad_auto_close_days_skips_the_plugin_naming_the_variable(tmp_path: Path) -> None:
    variable = "BACKPLANE_PLUGIN__HELPDESK__AUTO_CLOSE_DAYS"
    environ = {"BACKPLANE_DATA_DIR": str(tmp_path), "BACKPLANE_PLUGINS": "helpdesk", variable: "0"}
    listed = cli(environ, "plugins", "list")
    assert "plugin 'helpdesk' skipped (invalid-settings)" in listed.stderr
    assert f"{variable}: Expected `int` >= 1" in listed.stderr


def kernel_imports(source: str) -> list[str]:
    """Each import of ``backplane`` in ``source`` that is not public."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("backplane.") and a.name not in DOCUMENTED_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "backplane":
                found += [
                    f"from backplane import {a.name}"
                    for a in node.names
                    if a.name not in backplane.__all__
                ]
            elif node.module.startswith("backplane.") and node.module not in DOCUMENTED_MODULES:
                found.append(f"from {node.module} import ...")
    return found


def test_it_imports_only_the_documented_api() -> None:
    sources = sorted(PLUGIN_ROOT.glob("src/**/*.py")) + sorted(PLUGIN_ROOT.glob("tests/*.py"))
    assert len(sources) >= 10, sources  # the scan sees the plugin
    problems = {
        str(p.relative_to(PLUGIN_ROOT)): found
        for p in sources
        if (found := kernel_imports(p.read_text()))
    }
    assert problems == {}
    assert kernel_imports("from backplane.db import engine\nimport backplane.kernel") == [
        "from backplane.db import ...",
        "import backplane.kernel",
    ]
    assert kernel_imports("from backplane import _contract") == ["from backplane import _contract"]
