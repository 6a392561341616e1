"""``backplane serve`` freezes its start-up objects out of the collector's reach (full
collections otherwise stall the event loop under load); apps built elsewhere do not."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from backplane import app as app_module
from tests.conftest import make_settings


@pytest.mark.parametrize("enabled", [True, False])
def test_the_serving_factory_freezes_start_up_objects_when_enabled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, enabled: bool
) -> None:
    settings = make_settings(
        tmp_path / "var",
        {"BACKPLANE_PLUGINS": "", "BACKPLANE_SERVER__GC_FREEZE": "true" if enabled else "false"},
    )
    monkeypatch.setattr(app_module, "load_settings", lambda: settings)
    app = app_module.create_app_from_environment()
    hooks = [h for h in app.on_startup if h is app_module._freeze_startup_objects]
    assert len(hooks) == (1 if enabled else 0)
    if enabled:
        try:
            hooks[0]()
            assert gc.get_freeze_count() > 0
        finally:
            gc.unfreeze()  # this test process builds many apps: let their garbage go
