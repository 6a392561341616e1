"""``backplane serve`` freezes its start-up objects out of the collector's reach (full
collections otherwise stall the event loop under load); apps built elsewhere do not."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from litestar.testing import TestClient

from backplane.app import create_app, create_app_from_environment
from backplane.db import migrations
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.identity_helpers import TEST_PASSWORD_ENV


@pytest.mark.parametrize("enabled", [True, False])
def test_the_serving_factory_freezes_start_up_objects_when_enabled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, enabled: bool
) -> None:
    env = {
        "BACKPLANE_DATA_DIR": str(tmp_path / "var"),
        "BACKPLANE_PLUGINS": "",
        "BACKPLANE_SERVER__GC_FREEZE": "true" if enabled else "false",
        **TEST_PASSWORD_ENV,
    }
    for name in [n for n in os.environ if n.startswith("BACKPLANE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = make_settings(tmp_path / "var", env)
    migrations.upgrade(load_plugins(settings))
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(settings)):
            assert gc.get_freeze_count() == 0  # an app built elsewhere never freezes
        with TestClient(create_app_from_environment()):
            assert (gc.get_freeze_count() > 0) is enabled
    finally:
        gc.unfreeze()  # this test process builds many apps: let their garbage go
