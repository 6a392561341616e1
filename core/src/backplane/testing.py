"""A pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures, all isolated in a temporary data directory with migrations applied:

- ``backplane_settings``: settings built only from ``backplane_environ`` (override that
  fixture to select plugins or set plugin settings), never from the developer's environment;
- ``backplane_plugins``: the loaded :class:`~backplane.plugins.PluginSet`, migrated;
- ``backplane_app``: the Litestar app from ``create_app``;
- ``backplane_client``: a Litestar ``TestClient`` with the app's lifespan running.

Heavy imports happen inside the fixtures so that merely having the kernel installed does not
slow down unrelated pytest runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    """The ``BACKPLANE_*`` variables the test's settings are read from."""
    return {"BACKPLANE_DATA_DIR": str(tmp_path / "backplane-data")}


@pytest.fixture
def backplane_settings(backplane_environ: dict[str, str]) -> Any:
    from backplane.settings import load_settings

    return load_settings(environ=backplane_environ)


@pytest.fixture
def backplane_plugins(backplane_settings: Any) -> Any:
    from backplane.db import migrations
    from backplane.plugins import load_plugins

    plugins = load_plugins(backplane_settings)
    migrations.upgrade(plugins)
    return plugins


@pytest.fixture
def backplane_app(backplane_plugins: Any) -> Any:
    from backplane.app import create_app

    return create_app(backplane_plugins.settings, plugins=backplane_plugins)


@pytest.fixture
def backplane_client(backplane_app: Any) -> Iterator[Any]:
    from litestar.testing import TestClient

    with TestClient(backplane_app) as client:
        yield client
