"""Fixtures of the marketplace plugin's tests: the kernel's (``backplane.testing``) with only
this plugin loaded, tasks polled fast and cheap password hashing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from marketplace_helpers import base_environ


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    return base_environ(tmp_path)


@pytest.fixture
def backplane_postgres_url() -> str:
    """The server the kernel's own tests use when ``BACKPLANE_TEST_POSTGRES_URL`` is unset."""
    return os.environ.get(
        "BACKPLANE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
