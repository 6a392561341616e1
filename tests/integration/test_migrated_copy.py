"""A fresh SQLite database of the test fixtures is a copy of the first one migrated in the
process (``backplane.testing._migrate``): it must be the database an upgrade would have made,
and anything else (an existing database, other migrations) must still take the real upgrade."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from backplane import testing
from backplane.db import migrations
from backplane.loading import load_plugins
from tests.conftest import make_settings


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The data directories ``migrations.upgrade`` really ran on, with no template kept yet."""
    monkeypatch.setattr(testing, "_MIGRATED_TEMPLATES", {})
    ran: list[Path] = []
    real = migrations.upgrade

    def counted(plugins: Any, *args: Any, **kwargs: Any) -> None:
        ran.append(plugins.settings.data_dir)
        real(plugins, *args, **kwargs)

    monkeypatch.setattr(migrations, "upgrade", counted)
    return ran


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
