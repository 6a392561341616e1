"""SQLite connection settings: WAL, foreign keys and the configurable ``synchronous`` level."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from backplane.db.engine import create_engine
from backplane.settings import SettingsError
from tests.conftest import make_settings

# PRAGMA synchronous reports a number: 1 = NORMAL, 2 = FULL.
LEVELS = {"NORMAL": 1, "FULL": 2}


async def _pragmas(data_dir: Path, environ: dict[str, str]) -> tuple[str, int, int]:
    engine = create_engine(make_settings(data_dir, environ))
    try:
        async with engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await engine.dispose()
    return journal, synchronous, foreign_keys


@pytest.mark.parametrize(
    ("environ", "level"),
    [({}, "NORMAL"), ({"BACKPLANE_DB__SQLITE_SYNCHRONOUS": "FULL"}, "FULL")],
)
def test_every_connection_gets_wal_foreign_keys_and_the_synchronous_level(
    tmp_path: Path, environ: dict[str, str], level: str
) -> None:
    journal, synchronous, foreign_keys = asyncio.run(_pragmas(tmp_path / "var", environ))
    assert journal == "wal"
    assert synchronous == LEVELS[level]
    assert foreign_keys == 1


def test_an_unknown_synchronous_level_is_refused_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SQLITE_SYNCHRONOUS"):
        make_settings(tmp_path / "var", {"BACKPLANE_DB__SQLITE_SYNCHRONOUS": "OFF; DROP"})
