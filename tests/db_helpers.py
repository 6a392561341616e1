"""Kernel-side database access for tests: what an operator command would do."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from backplane.db import migrations
from backplane.db.engine import Database
from backplane.plugins import PluginSet
from backplane.settings import Settings


@asynccontextmanager
async def admin_session(settings: Settings, reason: str = "test") -> AsyncIterator[AsyncSession]:
    """A maintenance session (sees every tenant) on its own short-lived connection; the caller
    commits."""
    database = Database(settings)
    try:
        async with database.maintenance(reason) as session:
            yield session
    finally:
        await database.dispose()


# One migrated SQLite file per distinct set of migrations, per test process (xdist worker).
_MIGRATED_TEMPLATES: dict[tuple[object, ...], Path] = {}
_SQLITE_SUFFIXES = ("", "-wal", "-shm")


def migrate(plugins: PluginSet) -> PluginSet:
    """``migrations.upgrade(plugins)``, at the cost of a file copy when it can be one.

    Upgrading a fresh SQLite database through every branch costs about 0.6 s of CPU, and most
    tests start from one: the first upgrade of a set of migrations (the plugins' version
    directories and the revision files in them) is kept, and later fresh databases of the same
    set get a byte-for-byte copy of it, which is the database that upgrade would have left.
    A database that already exists, PostgreSQL, or an app role (granted by the migrations)
    takes the real upgrade. Tests of the migrations themselves call ``migrations.upgrade``."""
    settings = plugins.settings
    target = settings.data_dir / "backplane.sqlite3"
    if (
        settings.database_url
        or settings.db.migration_url
        or settings.db.app_role
        or any(Path(f"{target}{suffix}").exists() for suffix in _SQLITE_SUFFIXES)
    ):
        migrations.upgrade(plugins)
        return plugins
    key = _migrations_key(plugins)
    template = _MIGRATED_TEMPLATES.get(key)
    if template is None:
        migrations.upgrade(plugins)
        directory = tempfile.mkdtemp(prefix="bp-migrated-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        template = Path(directory) / "backplane.sqlite3"
        _copy_sqlite(target, template)
        _MIGRATED_TEMPLATES[key] = template
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_sqlite(template, target)
    return plugins


def _migrations_key(plugins: PluginSet) -> tuple[object, ...]:
    """What decides the schema an upgrade makes: each branch's directory and its revisions
    (names and modification times, so that a revision written by a test is seen)."""
    return tuple(
        (
            owner,
            registered.branch,
            str(registered.directory),
            tuple(
                sorted((p.name, p.stat().st_mtime_ns) for p in registered.directory.glob("*.py"))
            ),
        )
        for owner, registered in migrations.registered_migrations(plugins)
    )


def _copy_sqlite(source: Path, destination: Path) -> None:
    """The database file and its write-ahead log files, if any (no connection is open)."""
    for suffix in _SQLITE_SUFFIXES:
        path = Path(f"{source}{suffix}")
        if path.exists():
            shutil.copyfile(path, f"{destination}{suffix}")
