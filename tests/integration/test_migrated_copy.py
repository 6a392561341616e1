"""A fresh SQLite database of the test fixtures is a copy of the first one migrated in the
process (``backplane.testing._migrate``): it must be the database an upgrade would have made,
and anything else (an existing database, other migrations) must still take the real upgrade."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from backplane import testing
from backplane.db import migrations
from backplane.loading import load_plugins
from tests.conftest import make_settings, pg_admin


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The data directories ``migrations.upgrade`` really ran on, with no template kept yet."""
    monkeypatch.setattr(testing, "_MIGRATED_TEMPLATES", {})
    monkeypatch.setattr(testing, "_POSTGRES_TEMPLATES", {})
    ran: list[Path] = []
    real = migrations.upgrade

    def counted(plugins: Any, *args: Any, **kwargs: Any) -> None:
        ran.append(plugins.settings.data_dir)
        real(plugins, *args, **kwargs)

    monkeypatch.setattr(migrations, "upgrade", counted)
    yield ran
    testing._drop_migrated_templates()


def schema(data_dir: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(data_dir / "backplane.sqlite3")) as db:
        objects = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        heads = db.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
    return objects, heads


def test_a_second_fresh_database_is_a_copy_with_the_upgraded_schema(
    tmp_path: Path, upgrades: list[Path]
) -> None:
    first = testing._migrate(load_plugins(make_settings(tmp_path / "first")))
    second = testing._migrate(load_plugins(make_settings(tmp_path / "second")))

    assert upgrades == [first.settings.data_dir]
    objects, heads = schema(second.settings.data_dir)
    assert (objects, heads) == schema(first.settings.data_dir)
    assert len(heads) > 1  # every branch's head, not just the kernel's
    assert any(name == "backplane_tenants" for _, name, _ in objects)


def test_an_existing_database_and_other_migrations_take_the_real_upgrade(
    tmp_path: Path, upgrades: list[Path]
) -> None:
    every = load_plugins(make_settings(tmp_path / "every"))
    testing._migrate(every)
    testing._migrate(every)  # already there: upgraded (a no-op), never overwritten
    kernel_only = load_plugins(make_settings(tmp_path / "kernel", {"BACKPLANE_PLUGINS": ""}))
    testing._migrate(kernel_only)

    assert upgrades == [every.settings.data_dir, every.settings.data_dir, tmp_path / "kernel"]
    assert len(schema(tmp_path / "kernel")[1]) < len(schema(tmp_path / "every")[1])


@pytest.mark.postgres
def test_a_second_fresh_postgres_database_is_a_copy_its_app_role_can_use(
    tmp_path: Path, upgrades: list[Path], postgres_app_env: dict[str, str], postgres_server: str
) -> None:
    base = postgres_server.rsplit("/", 1)[0]
    name, role = f"bp_test_{uuid.uuid4().hex[:12]}", f"bp_app_{uuid.uuid4().hex[:10]}"
    pg_admin(postgres_server, f'CREATE DATABASE "{name}"')
    try:
        pg_admin(f"{base}/{name}", f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')
        second_env = {
            "BACKPLANE_DATABASE_URL": f"{base.replace('://postgres@', f'://{role}@')}/{name}",
            "BACKPLANE_DB__MIGRATION_URL": f"{base}/{name}",
            "BACKPLANE_DB__APP_ROLE": role,
        }
        first = load_plugins(make_settings(tmp_path / "first", postgres_app_env))
        testing._migrate(first)
        testing._migrate(load_plugins(make_settings(tmp_path / "second", second_env)))

        assert upgrades == [tmp_path / "first"]
        tables = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
        heads = "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version"
        for query in (tables, heads):
            assert testing._postgres_value(f"{base}/{name}", query) == testing._postgres_value(
                postgres_app_env["BACKPLANE_DB__MIGRATION_URL"], query
            )
        # the grants of upgrade's grant_app_role, to this database's own role
        as_role = second_env["BACKPLANE_DATABASE_URL"]
        assert testing._postgres_value(as_role, "SELECT count(*) FROM backplane_tenants") == 0
    finally:
        pg_admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(postgres_server, f'DROP ROLE IF EXISTS "{role}"')
