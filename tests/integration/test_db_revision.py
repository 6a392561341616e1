"""``db revision`` writes ``<plugin>_NNNN`` revisions that give new tenant tables row-level
security, and ``db check`` fails on PostgreSQL for a tenant table without it (SQLite has none).

The plugin is a real distribution on a temporary ``sys.path`` entry (a package and its
``.dist-info`` with the entry point), so the revisions land in a directory of the test's own.
It keeps its tables in a ``MetaData`` of its own: a model on the kernel's shared ``Base``
would stay in this process's metadata after the test and show up in every later ``db check``.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from tests.cli import run_cli
from tests.conftest import pg_admin

PLUGIN = "rlsdemo"
TABLE = f"{PLUGIN}_tickets"

PLUGIN_MODULE = """
from importlib.resources import files
from typing import Any

from backplane import PluginInfo, hookimpl

plugin = PluginInfo(name="{plugin}")


@hookimpl
def register_migrations(register: Any) -> None:
    from {package}.models import Ticket

    register(files(__package__) / "migrations", metadata=Ticket.metadata)
"""

MODELS_MODULE = """
from sqlalchemy import Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backplane import TenantScoped


class Base(DeclarativeBase):
    metadata = MetaData()


class Ticket(TenantScoped, Base):
    __tablename__ = "{table}"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
"""


@pytest.fixture
def versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the ``rlsdemo`` plugin (one tenant-scoped table, no revision yet) for this test;
    its empty version directory is returned."""
    package = f"bp_rlsdemo_{uuid.uuid4().hex[:8]}"  # a fresh import each test
    site = tmp_path / "site"
    source = site / package
    (source / "migrations").mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "plugin.py").write_text(PLUGIN_MODULE.format(plugin=PLUGIN, package=package))
    (source / "models.py").write_text(MODELS_MODULE.format(table=TABLE))
    metadata = site / f"{package}-0.1.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (metadata / "entry_points.txt").write_text(
        f"[backplane.plugins]\n{PLUGIN} = {package}.plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})  # stevedore's, per process
    return source / "migrations"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """kitchen_sink too: its models are in the kernel's metadata once any test imported them."""
    return {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": f"kitchen_sink,{PLUGIN}"}


def cli_ok(*args: str, env: dict[str, str]) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def is_postgres(env: dict[str, str]) -> bool:
    return "BACKPLANE_DATABASE_URL" in env


@pytest.fixture
def full_env(env: dict[str, str], db_env: dict[str, str]) -> dict[str, str]:
    """``env`` on SQLite, and on PostgreSQL as production runs it (``db_env``)."""
    return {**env, **db_env}


def test_revision_numbers_per_plugin_and_enables_rls_for_new_tenant_tables(
    versions: Path, full_env: dict[str, str]
) -> None:
    cli_ok("db", "upgrade", env=full_env)
    created = cli_ok("db", "revision", "--plugin", PLUGIN, "-m", "tickets", env=full_env)

    first = versions / f"{PLUGIN}_0001_tickets.py"
    assert str(first) in created
    text = first.read_text()
    assert f"revision: str = '{PLUGIN}_0001'" in text
    assert f"branch_labels: str | Sequence[str] | None = ('{PLUGIN}',)" in text
    assert "from backplane import disable_tenant_rls, enable_tenant_rls" in text
    upgrade, downgrade = text.split("def downgrade")
    assert re.search(rf"create_table\('{TABLE}'.*enable_tenant_rls\(op, '{TABLE}'\)", upgrade, re.S)
    assert re.search(
        rf"disable_tenant_rls\(op, '{TABLE}'\).*drop_table\('{TABLE}'\)", downgrade, re.S
    )

    cli_ok("db", "upgrade", env=full_env)
    checked = cli_ok("db", "check", env=full_env)
    assert "models and migrations agree" in checked
    if is_postgres(full_env):
        assert "not checked" not in checked
    else:
        assert "row-level security not checked: SQLite has none" in checked

    cli_ok("db", "revision", "--plugin", PLUGIN, "--empty", "-m", "more", env=full_env)
    second = (versions / f"{PLUGIN}_0002_more.py").read_text()
    assert f"down_revision: str | Sequence[str] | None = '{PLUGIN}_0001'" in second
    cli_ok("db", "upgrade", env=full_env)
    assert f"{PLUGIN}_0002 (head)" in cli_ok("db", "current", env=full_env)

    # The generated downgrade runs: RLS off, then the table goes.
    cli_ok("db", "downgrade", f"{PLUGIN}@base", env=full_env)
    assert PLUGIN not in cli_ok("db", "current", env=full_env)


def test_check_fails_for_a_tenant_table_without_rls_on_postgresql_only(
    versions: Path, full_env: dict[str, str]
) -> None:
    cli_ok("db", "upgrade", env=full_env)
    cli_ok("db", "revision", "--plugin", PLUGIN, "-m", "tickets", env=full_env)
    revision = versions / f"{PLUGIN}_0001_tickets.py"
    without_rls = re.sub(r".*_tenant_rls.*\n", "", revision.read_text())
    assert "tenant_rls" not in without_rls
    revision.write_text(without_rls)
    cli_ok("db", "upgrade", env=full_env)

    checked = run_cli("db", "check", env=full_env)
    if is_postgres(full_env):
        assert checked.returncode == 1, checked.stdout
        assert "db check failed" in checked.stderr
        assert f"tenant-scoped table {TABLE} has no row-level security" in checked.stderr
        assert "ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY" in checked.stderr
        assert f"enable_tenant_rls(op, '{TABLE}')" in checked.stderr
        assert "Traceback" not in checked.stderr
    else:
        assert checked.returncode == 0, checked.stderr
        assert "SQLite has none" in checked.stdout


@pytest.mark.postgres
def test_check_names_what_is_missing_when_rls_is_only_partly_there(
    versions: Path, env: dict[str, str], postgres_app_env: dict[str, str]
) -> None:
    full_env = {**env, **postgres_app_env}
    cli_ok("db", "upgrade", env=full_env)
    cli_ok("db", "revision", "--plugin", PLUGIN, "-m", "tickets", env=full_env)
    cli_ok("db", "upgrade", env=full_env)
    pg_admin(
        postgres_app_env["BACKPLANE_DB__MIGRATION_URL"],
        f'ALTER TABLE "{TABLE}" NO FORCE ROW LEVEL SECURITY',
    )
    checked = run_cli("db", "check", env=full_env)
    assert checked.returncode == 1
    assert f"{TABLE} has no row-level security (lacks FORCE ROW LEVEL SECURITY)" in checked.stderr
