"""Fixtures of the education plugin's tests: the kernel's (``backplane.testing``) with only
this plugin loaded, tasks polled fast and cheap password hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from backplane.testing import CHEAP_PASSWORD_HASHING


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return {
        "BACKPLANE_DATA_DIR": str(tmp_path / "data"),
        "BACKPLANE_PLUGINS": "education",
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        **CHEAP_PASSWORD_HASHING,
    }


@pytest.fixture
def backplane_postgres_url() -> str:
    """The server the kernel's own tests use when ``BACKPLANE_TEST_POSTGRES_URL`` is unset."""
    import os

    return os.environ.get(
        "BACKPLANE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
