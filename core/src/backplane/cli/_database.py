"""The database as a command meets it: an unmigrated or unreachable one is one line of advice.

Every command reaches the database its own way (operator sessions, alembic, a plugin's kernel),
so :class:`~backplane.cli.BackplaneGroup` maps what they raise here, once for all of them,
instead of each command catching SQLAlchemy's and the drivers' errors. The SQLite file a failed
command opened is removed again, so that a wrong data directory leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import click

from backplane.settings import Settings, redact_url

UPGRADE = "run `backplane db upgrade`"
DRIVERS = ("asyncpg", "aiosqlite", "sqlalchemy", "sqlite3")
"""Modules whose own frames raise the connection errors mapped here: an ``OSError`` raised
anywhere else (a file a command reads) is not the database's."""
UNDEFINED = ("42P01", "42703")
"""PostgreSQL's undefined table and undefined column."""
REFUSING = ("08", "28", "3D", "53", "57P03")
"""PostgreSQL's classes of a server that answered and refused: connection exception, invalid
authorisation (role, password), unknown database, insufficient resources, starting up."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_by_driver(exc: BaseException) -> bool:
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(DRIVERS):
            return True
        tb = tb.tb_next
    return False


def _configured_urls(settings: Settings) -> list[tuple[str, str]]:
    """``(variable, URL as the operator wrote it)`` of each database connection, distinct."""
    urls = [
        (
            settings.sources.get("database_url", "BACKPLANE_DATABASE_URL"),
            settings.database_url or settings.resolved_database_url(),
        ),
        (
            settings.sources.get("db.migration_url", "BACKPLANE_DB__MIGRATION_URL"),
            settings.db.migration_url,
        ),
        (
            settings.sources.get("db.maintenance_url", "BACKPLANE_DB__MAINTENANCE_URL"),
            settings.db.maintenance_url,
        ),
    ]
    found: list[tuple[str, str]] = []
    for variable, url in urls:
        if url and url not in [u for _, u in found]:
            found.append((variable, url))
    return found


def _where(settings: Settings, text: str) -> tuple[str, str]:
    """The URL (redacted) and variable(s) of the connection that failed: the one whose host
    and port the driver's message names, else all of them."""
    urls = _configured_urls(settings)
    named = []
    for variable, url in urls:
        address = re.search(r"@\[?([^/:\]]+)\]?:?(\d*)", url)
        if address is None:
            continue
        host, port = address.group(1), address.group(2) or "5432"
        if f"'{host}', {port})" in text or f"{host}:{port}" in text:  # asyncpg's, or a URL
            named.append((variable, url))
    chosen = named[:1] or urls
    return redact_url(chosen[0][1]), ", ".join(variable for variable, _ in chosen)


def _reason(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within db.connect_timeout_s, {settings.db.connect_timeout_s:g} s"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text


def database_problem(exc: BaseException, settings: Settings) -> str | None:
    """One line saying what to do about ``exc``, if it is the database's being unmigrated or
    unreachable; None for anything else (a bug keeps its traceback)."""
    from sqlalchemy.exc import DBAPIError

    for error in _chain(exc):
        if isinstance(error, DBAPIError):
            original = str(error.orig)
            if getattr(error.orig, "sqlstate", None) in UNDEFINED or re.match(
                r"no such (table|column)", original
            ):
                detail = re.sub(r"^<class '[\w.]+'>: ", "", original.splitlines()[0])
                return f"the database is not migrated ({detail}): {UPGRADE}"
            if "unable to open database file" in original:
                url, variable = _where(settings, "")
                return f"cannot open the database at {url} ({original}): check {variable}"
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(REFUSING) and _raised_by_driver(error):
            url, variable = _where(settings, str(error))
            return f"the database at {url} refused the connection ({error}): check {variable}"
        if isinstance(error, OSError | TimeoutError) and _raised_by_driver(error):
            url, variable = _where(settings, str(error))
            return (
                f"cannot reach the database at {url} ({_reason(error, settings)}): "
                f"is it running? ({variable})"
            )
    return None


def _sqlite_files(settings: Settings) -> list[Path]:
    urls = (
        settings.resolved_database_url(),
        settings.resolved_migration_url(),
        settings.resolved_maintenance_url(),
    )
    paths = {u.partition(":///")[2].partition("?")[0] for u in urls if u.startswith("sqlite")}
    return [Path(p) for p in sorted(paths) if p and p != ":memory:"]


def _has_tables(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            return bool(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.Error:
        return True  # not ours to judge: leave it


def _missing_directories(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    return missing


@contextlib.contextmanager
def reported(settings: Settings | None) -> Iterator[None]:
    """Run a command; a database it cannot use becomes a :class:`click.ClickException`, and
    SQLite files (and the data directory) it created without creating a table are removed."""
    new_files = [p for p in _sqlite_files(settings) if not p.exists()] if settings else []
    new_dirs = [] if settings is None else _missing_directories(settings.data_dir)
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:
        problem = database_problem(exc, settings) if settings else None
        if problem is None:
            raise
        raise click.ClickException(problem) from None
    finally:
        for path in new_files:
            if path.exists() and not _has_tables(path):
                for leftover in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
                    leftover.unlink(missing_ok=True)
        for directory in new_dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty
