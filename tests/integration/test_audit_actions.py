"""Every security-relevant action the kernel performs leaves one audit row, on SQLite and on
PostgreSQL (as the application's role, under row-level security): one test per action, each
checking the row's action, actor, target and tenant."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from backplane.audit.actor import Actor, acting
from backplane.audit.record import AuditActionError, record
from backplane.kernel import Rails
from backplane.models import resource
from backplane.plugins import PluginSet
from backplane.testing import TEST_PASSWORD, SeededTenant, audit_trail, seed_tenant
from tests.audit_helpers import assert_row, only, trail
from tests.billing_helpers import put_plans
from tests.cli import run_cli
from tests.db_helpers import admin_session
from tests.identity_helpers import TEST_PASSWORD_ENV

CLIENT = "testclient"
"""The client address Litestar's test client reports."""


def key_actor(tenant: SeededTenant) -> tuple[str, str]:
    return ("api_key", tenant.api_key_id)


def login(client: TestClient[Litestar], email: str, **extra: Any) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": TEST_PASSWORD, **extra})


def test_a_login_is_recorded_with_the_user_and_address(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    assert login(dual_client, dual_tenant_a.email).status_code == 200
    row = only(dual_plugins.settings, dual_tenant_a.tenant_id, "auth.login")
    user = ("user", dual_tenant_a.user_id)
    assert_row(row, tenant_id=dual_tenant_a.tenant_id, actor=user, target=user)
    assert row.address == CLIENT
    assert row.details == {"method": "password"}


def test_switching_tenant_is_a_login_recorded_in_the_tenant_switched_to(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    a = dual_tenant_a
    b = seed_tenant(dual_plugins, "globex", email=a.email)
    token = login(dual_client, a.email, tenant="acme").json()["access_token"]
    switched = dual_client.post(
        "/api/auth/switch-tenant",
        json={"tenant": "globex"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert switched.status_code == 200, switched.text
    row = only(dual_plugins.settings, b.tenant_id, "auth.login")
    user = ("user", a.user_id)
    assert_row(row, tenant_id=b.tenant_id, actor=user, target=user)
    assert row.details == {"method": "switch_tenant"}
    assert row.address == CLIENT
    assert len(trail(dual_plugins.settings, a.tenant_id, "auth.login")) == 1  # the password one


def test_a_password_change_is_recorded_in_each_tenant_of_the_user(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    a = dual_tenant_a
    b = seed_tenant(dual_plugins, "globex", email=a.email)
    token = login(dual_client, a.email).json()["access_token"]
    changed = dual_client.put(
        "/api/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": "a-much-longer-passphrase-42"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert changed.status_code == 200, changed.text
    user = ("user", a.user_id)
    for tenant in (a, b):
        row = only(dual_plugins.settings, tenant.tenant_id, "auth.password_changed")
        assert_row(row, tenant_id=tenant.tenant_id, actor=user, target=user)
        assert "passphrase" not in str(row.details)


def test_a_failed_login_is_recorded_in_one_tenant_of_the_account(
    dual_client: TestClient[Litestar],
    dual_plugins: PluginSet,
    dual_tenant_a: SeededTenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = dual_plugins.settings
    a = dual_tenant_a
    # The same person owns a second tenant: a failure aimed at it is recorded there alone.
    b = seed_tenant(dual_plugins, "globex", email=a.email)
    wrong = {"email": a.email, "password": "not-the-password"}
    assert dual_client.post("/api/auth/login", json=wrong).status_code == 401
    row = only(settings, a.tenant_id, "auth.login_failed")
    user = ("user", a.user_id)
    assert_row(row, tenant_id=a.tenant_id, actor=user, target=user)
    assert row.details == {"reason": "wrong password"}
    assert row.address == CLIENT
    assert trail(settings, b.tenant_id, "auth.login_failed") == []

    aimed = dual_client.post("/api/auth/login", json={**wrong, "tenant": "globex"})
    assert aimed.status_code == 401
    assert_row(
        only(settings, b.tenant_id, "auth.login_failed"),
        tenant_id=b.tenant_id,
        actor=user,
        target=user,
    )
    assert len(trail(settings, a.tenant_id, "auth.login_failed")) == 1  # A saw nothing of it
    assert "globex" not in str(trail(settings, b.tenant_id, "auth.login_failed")[0].details)

    # An email no account has belongs to no tenant: the log only, and without the email.
    before = len(trail(settings))
    with caplog.at_level(logging.INFO, logger="backplane.audit"):
        unknown = {"email": "nobody@nowhere.example.org", "password": "guess-guess-guess"}
        assert dual_client.post("/api/auth/login", json=unknown).status_code == 401
    assert len(trail(settings)) == before
    logged = [r.getMessage() for r in caplog.records if "unknown email" in r.getMessage()]
    assert len(logged) == 1
    assert "nobody@" not in logged[0]
    assert CLIENT in logged[0]


def test_refresh_token_reuse_is_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    pair = login(dual_client, dual_tenant_a.email).json()
    body = {"refresh_token": pair["refresh_token"]}
    assert dual_client.post("/api/auth/refresh", json=body).status_code == 200
    assert dual_client.post("/api/auth/refresh", json=body).status_code == 401  # reuse
    row = only(dual_plugins.settings, dual_tenant_a.tenant_id, "auth.refresh_reuse")
    assert_row(
        row,
        tenant_id=dual_tenant_a.tenant_id,
        actor=("user", dual_tenant_a.user_id),
        target=("session", row.target_id),
    )
    uuid.UUID(row.target_id or "")  # the session (refresh family) id
    assert row.address == CLIENT


def test_creating_an_api_key_is_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    created = dual_client.post(
        "/api/apikeys", json={"name": "ci", "role": "viewer"}, headers=dual_tenant_a.headers
    )
    assert created.status_code == 201, created.text
    key_id = created.json()["id"]
    rows = trail(dual_plugins.settings, dual_tenant_a.tenant_id, "apikey.created")
    row = next(r for r in rows if r.target_id == key_id)
    a = dual_tenant_a
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=("api_key", key_id))
    assert row.details == {"name": "ci", "role": "viewer", "scopes": []}
    assert created.json()["key"] not in str(row.details)  # never the secret


def test_revoking_an_api_key_is_recorded_once(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    a = dual_tenant_a
    key_id = dual_client.post(
        "/api/apikeys", json={"name": "old", "role": "viewer"}, headers=a.headers
    ).json()["id"]
    for _ in range(2):  # revoking a revoked key changes nothing and records nothing
        assert dual_client.delete(f"/api/apikeys/{key_id}", headers=a.headers).status_code == 204
    row = only(dual_plugins.settings, a.tenant_id, "apikey.revoked")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=("api_key", key_id))


def test_membership_changes_are_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a
    added = dual_client.post(
        "/api/tenant/members",
        json={"email": "dev@acme.example.org", "role": "member"},
        headers=a.headers,
    )
    assert added.status_code == 201, added.text
    member = ("user", added.json()["user_id"])
    row = only(settings, a.tenant_id, "member.added")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=member)
    assert row.details == {"role": "member"}

    url = f"/api/tenant/members/{member[1]}"
    assert dual_client.patch(url, json={"role": "admin"}, headers=a.headers).status_code == 200
    row = only(settings, a.tenant_id, "member.role_changed")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=member)
    assert row.details == {"from": "member", "to": "admin"}

    assert dual_client.delete(url, headers=a.headers).status_code == 204
    row = only(settings, a.tenant_id, "member.removed")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=member)
    assert row.details == {"role": "admin", "revoked_api_keys": []}


def test_plugin_switches_are_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a
    url = "/api/tenant/plugins/kitchen_sink"
    assert dual_client.put(url, json={"enabled": False}, headers=a.headers).status_code == 200
    off = only(settings, a.tenant_id, "plugin.disabled")
    assert_row(off, tenant_id=a.tenant_id, actor=key_actor(a), target=("plugin", "kitchen_sink"))
    assert dual_client.put(url, json={"enabled": True}, headers=a.headers).status_code == 200
    on = only(settings, a.tenant_id, "plugin.enabled")
    assert_row(on, tenant_id=a.tenant_id, actor=key_actor(a), target=("plugin", "kitchen_sink"))
    assert on.seq > off.seq


def test_model_uploads_and_deletions_are_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a
    uploaded = dual_client.post(
        "/api/models",
        files={"file": ("model.onnx", resource("iris_classifier.onnx").read_bytes())},
        data={"name": "flowers"},
        headers=a.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    row = only(settings, a.tenant_id, "model.uploaded")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=("model", "flowers/1"))
    assert row.details["sha256"] == uploaded.json()["sha256"]

    assert dual_client.delete("/api/models/flowers", headers=a.headers).status_code == 204
    row = only(settings, a.tenant_id, "model.deleted")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=("model", "flowers/1"))


def test_plan_changes_are_recorded(
    dual_client: TestClient[Litestar], dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a
    asyncio.run(put_plans(settings, {"code": "pro", "name": "Pro", "self_service": True}))
    changed = dual_client.put("/api/billing/subscription", json={"plan": "pro"}, headers=a.headers)
    assert changed.status_code == 200, changed.text
    rows = trail(settings, a.tenant_id, "plan.changed")
    row = next(r for r in rows if r.target_id == "pro")
    assert_row(row, tenant_id=a.tenant_id, actor=key_actor(a), target=("plan", "pro"))
    assert row.details == {"from": "free"}


def test_tenant_creation_and_operator_commands_are_recorded_as_the_operator(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant, db_env: dict[str, str]
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a
    created = only(settings, a.tenant_id, "tenant.created")
    assert created.target_id == str(a.tenant_id)
    assert created.seq == 1  # the first row of the tenant's chain
    env = {"BACKPLANE_DATA_DIR": str(settings.data_dir), **TEST_PASSWORD_ENV, **db_env}
    result = run_cli("apikeys", "revoke", a.api_key_id, "--tenant", "acme", env=env)
    assert result.returncode == 0, result.stderr
    row = only(settings, a.tenant_id, "apikey.revoked")
    assert (row.actor_kind, row.actor_id) == ("operator", getpass.getuser())
    assert (row.target_type, row.target_id) == ("api_key", a.api_key_id)
    assert row.address is None


def test_plugins_record_their_own_actions_in_the_callers_transaction(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    settings, a = dual_plugins.settings, dual_tenant_a

    async def work() -> None:
        rails = Rails.build(settings, dual_plugins)
        plugin = rails.kernel().for_plugin("kitchen_sink")
        try:
            async with plugin.tenant(a.tenant_id) as kernel:
                await kernel.audit.record(
                    "kitchen_sink.note_deleted", target=("note", 7), details={"title": "x"}
                )
                with pytest.raises(AuditActionError, match=r"kitchen_sink\.<what_happened>"):
                    await kernel.audit.record("billing.note_deleted")
                with pytest.raises(AuditActionError):
                    await kernel.audit.record("auth.login")
                with pytest.raises(ValueError, match="at most"):
                    await kernel.audit.record("kitchen_sink.big", details={"x": "y" * 10_000})
            with contextlib.suppress(RuntimeError):  # the action fails: its row goes with it
                async with plugin.tenant(a.tenant_id) as kernel:
                    await kernel.audit.record("kitchen_sink.rolled_back")
                    raise RuntimeError("the action failed")
        finally:
            await rails.close()

    with acting(Actor(kind="system")):
        asyncio.run(work())
    # As a plugin's own tests see it (backplane.testing).
    [row] = audit_trail(dual_plugins, a, "kitchen_sink.note_deleted")
    assert_row(row, tenant_id=a.tenant_id, actor=("system", None), target=("note", 7))
    assert (row.plugin, row.details) == ("kitchen_sink", {"title": "x"})
    assert audit_trail(dual_plugins, "acme", "kitchen_sink.rolled_back") == []


def test_exports_and_erasures_can_be_recorded_by_kernel_code(
    dual_plugins: PluginSet, dual_tenant_a: SeededTenant
) -> None:
    """The data-rights service records through the same function (its routes come later)."""
    settings, a = dual_plugins.settings, dual_tenant_a

    async def work() -> None:
        async with admin_session(settings) as session, session.begin():
            target = ("user", a.user_id)
            await record(session, "data.exported", tenant_id=a.tenant_id, target=target)
            await record(session, "data.erased", tenant_id=a.tenant_id, target=target)
            with pytest.raises(AuditActionError, match="not one of the kernel"):
                await record(session, "data.misspelt", tenant_id=a.tenant_id)

    asyncio.run(work())
    for action in ("data.exported", "data.erased"):
        row = only(settings, a.tenant_id, action)
        assert_row(row, tenant_id=a.tenant_id, actor=("system", None), target=("user", a.user_id))
