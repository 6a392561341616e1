"""A pytest plugin for plugin authors (auto-loaded through the ``pytest11`` entry point).

Fixtures, all isolated in a temporary data directory with migrations applied:

- ``backplane_settings``: settings built only from ``backplane_environ`` (override that
  fixture to select plugins or set plugin settings), never from the developer's environment;
- ``backplane_plugins``: the loaded :class:`~backplane.plugins.PluginSet`, migrated;
- ``backplane_app``: the Litestar app from ``create_app``;
- ``backplane_tenant``: a tenant with an owner and an owner-role API key (:class:`SeededTenant`);
- ``backplane_client``: a Litestar ``TestClient`` authenticated with that key, lifespan running;
- ``backplane_anonymous_client``: the same without credentials.

Heavy imports happen inside the fixtures so that merely having the kernel installed does not
slow down unrelated pytest runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TEST_PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a fixture's known password
CHEAP_PASSWORD_HASHING = {
    "BACKPLANE_AUTH__PASSWORD_MEMORY_KIB": "1024",
    "BACKPLANE_AUTH__PASSWORD_TIME_COST": "1",
    # Not about passwords, but about test speed too: idle task workers stop within 0.1 s.
    "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
}


@dataclass
class SeededTenant:
    """A tenant made for a test: its owner logs in with ``TEST_PASSWORD`` or uses ``api_key``."""

    slug: str
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    api_key: str
    api_key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def seed_tenant(
    plugins: Any, slug: str, email: str | None = None, key_role: str = "owner"
) -> SeededTenant:
    """Create tenant ``slug`` with an owner (password ``TEST_PASSWORD``) and an API key."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            asyncio.run, _seed(plugins, slug, email or f"owner@{slug}.example.org", key_role)
        ).result()


async def _seed(plugins: Any, slug: str, email: str, key_role: str) -> SeededTenant:
    from backplane.identity.provision import provision_tenant
    from backplane.kernel import Rails
    from backplane.secret_key import secret_key

    rails = Rails.build(plugins.settings, plugins)
    try:
        async with rails.database.maintenance(f"test seeds tenant {slug}") as session:
            made = await provision_tenant(
                session,
                rails.kernel(),
                server_secret=secret_key(plugins.settings),
                slug=slug,
                owner_email=email,
                password=TEST_PASSWORD,
                key_name="test",
                key_role=key_role,
            )
            await session.commit()
            return SeededTenant(
                slug,
                made.tenant.id,
                made.owner.id,
                made.owner.email,
                made.api_key.key,
                made.api_key.id,
            )
    finally:
        await rails.close()


@pytest.fixture
def backplane_environ(tmp_path: Path) -> dict[str, str]:
    """The ``BACKPLANE_*`` variables the test's settings are read from."""
    return {"BACKPLANE_DATA_DIR": str(tmp_path / "backplane-data"), **CHEAP_PASSWORD_HASHING}


@pytest.fixture
def backplane_settings(backplane_environ: dict[str, str]) -> Any:
    from backplane.settings import load_settings

    return load_settings(environ=backplane_environ)


@pytest.fixture
def backplane_plugins(backplane_settings: Any) -> Any:
    from backplane.db import migrations
    from backplane.loading import load_plugins

    plugins = load_plugins(backplane_settings)
    migrations.upgrade(plugins)
    return plugins


@pytest.fixture
def backplane_app(backplane_plugins: Any) -> Any:
    from backplane.app import create_app

    return create_app(backplane_plugins.settings, plugins=backplane_plugins)


@pytest.fixture
def backplane_tenant(backplane_plugins: Any) -> SeededTenant:
    return seed_tenant(backplane_plugins, "test-tenant")


@pytest.fixture
def backplane_anonymous_client(backplane_app: Any) -> Iterator[Any]:
    from litestar.testing import TestClient

    with TestClient(backplane_app) as client:
        yield client


@pytest.fixture
def backplane_client(backplane_anonymous_client: Any, backplane_tenant: SeededTenant) -> Any:
    backplane_anonymous_client.headers.update(backplane_tenant.headers)
    return backplane_anonymous_client
