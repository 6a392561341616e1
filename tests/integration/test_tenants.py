"""Tenant administration: creation with an owner, roles, the last owner, plugin switches."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.tenants import (
    IdentityError,
    create_tenant,
    enabled_plugins,
    get_or_create_user,
    set_member_role,
    set_plugin_enabled,
)
from backplane.kernel import Kernel, Rails
from backplane.plugins import PluginSet
from tests.cli import run_cli
from tests.db_helpers import admin_session as open_admin_session


@pytest.fixture
async def admin_session(migrated: PluginSet) -> AsyncSession:
    async with open_admin_session(migrated.settings) as session:
        yield session


@pytest.fixture
async def kernel(migrated: PluginSet) -> AsyncIterator[Kernel]:
    """The kernel an operator command has (hooks get their own plugin's view of it)."""
    rails = Rails.build(migrated.settings, migrated)
    yield rails.kernel()
    await rails.close()


async def test_create_tenant_with_owner_fires_the_hook(
    admin_session: AsyncSession, kernel: Kernel
) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    kitchen_sink.EVENTS.clear()
    tenant, owner = await create_tenant(
        admin_session, kernel, slug="acme", owner_email=" Ada@Example.ORG "
    )
    assert owner.email == "ada@example.org"
    [(event, (view, created))] = kitchen_sink.EVENTS
    assert (event, created) == ("tenant_created", tenant)
    assert (view.plugin, view.tenant_id, view.db) == ("kitchen_sink", tenant.id, admin_session)
    with pytest.raises(IdentityError, match="already exists"):
        await create_tenant(admin_session, kernel, slug="acme", owner_email="b@example.org")


@pytest.mark.parametrize("slug", ["A", "has space", "-dash", "x" * 64, "ünï"])
async def test_bad_slugs_are_refused(
    admin_session: AsyncSession, kernel: Kernel, slug: str
) -> None:
    with pytest.raises(IdentityError, match="slug"):
        await create_tenant(admin_session, kernel, slug=slug, owner_email="a@example.org")


async def test_bad_email_is_refused(admin_session: AsyncSession, kernel: Kernel) -> None:
    with pytest.raises(IdentityError, match="not an email"):
        await create_tenant(admin_session, kernel, slug="acme", owner_email="nobody")


async def test_last_owner_cannot_be_removed_or_demoted(
    admin_session: AsyncSession, kernel: Kernel
) -> None:
    tenant, owner = await create_tenant(
        admin_session, kernel, slug="acme", owner_email="a@example.org"
    )
    with pytest.raises(IdentityError, match="last owner"):
        await set_member_role(admin_session, tenant.id, owner.id, None)
    with pytest.raises(IdentityError, match="last owner"):
        await set_member_role(admin_session, tenant.id, owner.id, "admin")
    second = await get_or_create_user(admin_session, "b@example.org")
    await set_member_role(admin_session, tenant.id, second.id, "owner")
    await set_member_role(admin_session, tenant.id, owner.id, "viewer")
    with pytest.raises(IdentityError, match="role must be"):
        await set_member_role(admin_session, tenant.id, owner.id, "god")


async def test_plugin_switch_per_tenant(admin_session: AsyncSession, kernel: Kernel) -> None:
    from bp_sample_kitchen_sink import plugin as kitchen_sink

    tenant, _ = await create_tenant(admin_session, kernel, slug="acme", owner_email="a@example.org")
    other, _ = await create_tenant(admin_session, kernel, slug="other", owner_email="b@example.org")
    kitchen_sink.EVENTS.clear()
    await set_plugin_enabled(admin_session, kernel, tenant, "kitchen_sink", False)
    assert kitchen_sink.EVENTS == []
    await admin_session.commit()
    assert (await enabled_plugins(admin_session, kernel, tenant.id))["kitchen_sink"] is False
    assert (await enabled_plugins(admin_session, kernel, other.id))["kitchen_sink"] is True
    await set_plugin_enabled(admin_session, kernel, tenant, "kitchen_sink", True)
    [(event, (view, switched, name))] = kitchen_sink.EVENTS
    assert (event, switched, name) == ("plugin_enabled", tenant, "kitchen_sink")
    assert (view.plugin, view.tenant_id) == ("kitchen_sink", tenant.id)
    with pytest.raises(IdentityError, match="not an installed"):
        await set_plugin_enabled(admin_session, kernel, tenant, "incompatible", True)


def test_cli_tenants_create_json(data_dir: Path) -> None:
    env = {"BACKPLANE_DATA_DIR": str(data_dir), "BACKPLANE_PLUGINS": "kitchen_sink"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    result = run_cli(
        "tenants", "create", "acme", "--owner-email", "ada@example.org", "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    uuid.UUID(body["tenant_id"])
    uuid.UUID(body["owner_user_id"])
    again = run_cli("tenants", "create", "acme", "--owner-email", "x@example.org", env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
