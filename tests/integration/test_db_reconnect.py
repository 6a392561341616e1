"""Pooled connections the server ended are replaced at checkout, without a ping per request
(PostgreSQL: a restart, an idle timeout or ``pg_terminate_backend`` closes them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.testing import SeededTenant, seed_tenant
from tests.conftest import make_settings, pg_admin
from tests.db_helpers import migrate

pytestmark = pytest.mark.postgres


@pytest.fixture
def world(data_dir: Path, postgres_app_env: dict[str, str]) -> tuple[PluginSet, SeededTenant]:
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "", **postgres_app_env}))
    migrate(plugins)
    return plugins, seed_tenant(plugins, "acme")


async def test_requests_after_the_server_ended_every_connection_succeed(
    world: tuple[PluginSet, SeededTenant], postgres_app_env: dict[str, str], postgres_url: str
) -> None:
    plugins, tenant = world
    role = postgres_app_env["BACKPLANE_DB__APP_ROLE"]
    async with AsyncTestClient(create_app(plugins.settings, plugins=plugins)) as client:
        client.headers.update(tenant.headers)
        for _ in range(3):
            # Several requests at once, so that several connections are pooled.
            responses = await asyncio.gather(*[client.get("/api/billing/usage") for _ in range(6)])
            assert [r.status_code for r in responses] == [200] * 6
            pg_admin(
                postgres_url,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
            )
            await asyncio.sleep(0.2)  # the loop sees the sockets close
            again = await client.get("/api/billing/usage")
            assert again.status_code == 200, again.text
