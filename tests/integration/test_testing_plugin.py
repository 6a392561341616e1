"""The pytest plugin that plugin authors use (``backplane.testing``), used as they would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_PLUGIN__KITCHEN_SINK__GREETING": "from a fixture",
    }


def test_client_fixture_serves_the_selected_plugin(backplane_client: Any) -> None:
    assert backplane_client.get("/api/kitchen_sink/greeting").json() == {
        "greeting": "from a fixture"
    }
    created = backplane_client.post("/api/kitchen_sink/notes", json={"body": "x"})
    assert created.status_code == 201


def test_plugins_fixture_is_migrated_and_isolated(backplane_plugins: Any, tmp_path: Path) -> None:
    assert backplane_plugins.loaded == ["core", "kitchen_sink"]
    assert backplane_plugins.settings.data_dir == tmp_path / "data"
    assert (tmp_path / "data" / "backplane.sqlite3").exists()
