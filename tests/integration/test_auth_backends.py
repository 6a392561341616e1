"""``register_auth_backends`` is real: the kitchen_sink sample's own header authenticates through
HTTP, before the kernel's bearer tokens and API keys, and its principal meets the same guards
and tenant isolation as any other (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.exceptions import NotAuthorizedException
from litestar.testing import TestClient

from backplane import AuthBackend, Principal
from backplane.app import create_app
from backplane.identity.backends import UnknownAuthBackendError, auth_backends
from backplane.kernel import Rails
from backplane.loading import load_plugins
from backplane.plugins import KERNEL_PLUGIN, PluginSet
from tests.app_helpers import rails
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import PASSWORD, Seeded, seed_tenant

TOKEN = "kitchen-sink-test-token"
SINK = {"X-Kitchen-Sink-Token": TOKEN}
CONFIGURED = {
    "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TOKEN": TOKEN,
    "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TENANT": "acme",
}


@contextmanager
def serving(
    data_dir: Path, env: dict[str, str], *slugs: str
) -> Iterator[tuple[TestClient[Litestar], list[Seeded]]]:
    """A migrated app with ``env`` (kitchen_sink's settings), and tenants ``slugs`` seeded."""
    plugins = load_plugins(make_settings(data_dir, env))
    migrate(plugins)
    tenants = [seed_tenant(plugins, slug) for slug in slugs]
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        yield client, tenants


def me(client: TestClient[Litestar], headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/me", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_plugin_header_authenticates_as_its_tenant_and_role(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    with serving(data_dir, {**db_env, **CONFIGURED}, "acme", "globex") as (client, tenants):
        acme, _ = tenants
        body = me(client, SINK)
        assert body["authenticated_by"] == "kitchen_sink_header"
        assert body["tenant_id"] == str(acme.tenant_id)
        assert body["role"] == "viewer"
        assert body["user_id"] is None
        assert "tenant.read" in body["permissions"]
        assert "apikeys.manage" not in body["permissions"]

        wrong = client.get("/api/me", headers={"X-Kitchen-Sink-Token": "guess"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "invalid X-Kitchen-Sink-Token"


def test_bearer_tokens_and_api_keys_still_work_beside_it(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    with serving(data_dir, {**db_env, **CONFIGURED}, "acme") as (client, [acme]):
        assert me(client, acme.headers)["authenticated_by"] == "api_key"
        assert me(client, {"X-API-Key": acme.api_key})["authenticated_by"] == "api_key"
        login = client.post("/api/auth/login", json={"email": acme.email, "password": PASSWORD})
        access = login.json()["access_token"]
        token_me = me(client, {"Authorization": f"Bearer {access}"})
        assert token_me["authenticated_by"] == "token"
        assert token_me["email"] == acme.email
        assert client.get("/api/me").json()["detail"] == "authentication required"


def test_plugin_backends_are_asked_before_the_kernels(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    with serving(data_dir, {**db_env, **CONFIGURED}, "acme") as (client, [acme]):
        # Both credentials: the plugin's backend answers first, as the viewer it configures.
        both = me(client, {**SINK, **acme.headers})
        assert (both["authenticated_by"], both["role"]) == ("kitchen_sink_header", "viewer")
        # A bad header of the plugin's kind is refused before the valid API key is looked at.
        mixed = {"X-Kitchen-Sink-Token": "guess", **acme.headers}
        assert client.get("/api/me", headers=mixed).status_code == 401


def test_auth_backends_setting_picks_the_order(data_dir: Path, db_env: dict[str, str]) -> None:
    env = {**db_env, **CONFIGURED, "BACKPLANE_AUTH__BACKENDS": "bearer,kitchen_sink_header"}
    with serving(data_dir, env, "acme") as (client, [acme]):
        assert me(client, {**SINK, **acme.headers})["authenticated_by"] == "api_key"
        assert me(client, SINK)["authenticated_by"] == "kitchen_sink_header"
    only_bearer = {**db_env, **CONFIGURED, "BACKPLANE_AUTH__BACKENDS": "bearer"}
    with serving(data_dir, only_bearer) as (client, _):
        assert client.get("/api/me", headers=SINK).status_code == 401


def test_an_unknown_backend_in_the_setting_stops_start_up(data_dir: Path) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_AUTH__BACKENDS": "bearer,ldap"})
    with pytest.raises(UnknownAuthBackendError, match="'ldap'"):
        create_app(settings)


def test_the_header_is_ignored_unless_configured(data_dir: Path, db_env: dict[str, str]) -> None:
    with serving(data_dir, db_env, "acme") as (client, [acme]):
        refused = client.get("/api/me", headers=SINK)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "authentication required"
        assert me(client, {**SINK, **acme.headers})["authenticated_by"] == "api_key"


def test_a_plugin_principal_meets_the_same_guards(data_dir: Path, db_env: dict[str, str]) -> None:
    with serving(data_dir, {**db_env, **CONFIGURED}, "acme", "globex") as (client, tenants):
        acme, globex = tenants
        # Permissions: a viewer may not manage API keys.
        created = client.post("/api/apikeys", headers=SINK, json={"name": "x", "role": "viewer"})
        assert created.status_code == 403
        assert "apikeys.manage" in created.json()["detail"]
        # Tenant isolation: it sees its tenant's rows only.
        for tenant, body in ((acme, "acme note"), (globex, "globex note")):
            posted = client.post(
                "/api/kitchen_sink/notes", headers=tenant.headers, json={"body": body}
            )
            assert posted.status_code == 201, posted.text
        notes = client.get("/api/kitchen_sink/notes", headers=SINK)
        assert [n["body"] for n in notes.json()] == ["acme note"]
        # Plugin switches: off for its tenant, the plugin's routes are 404 to it too.
        off = client.put(
            "/api/tenant/plugins/kitchen_sink", headers=acme.headers, json={"enabled": False}
        )
        assert off.status_code == 200
        # ... and the plugin's backend no longer lets anyone into that tenant, kernel routes
        # included (the switch is read through a cache that this process forgot at once).
        refused = client.get("/api/me", headers=SINK)
        assert refused.status_code == 401
        assert "switched off" in refused.json()["detail"]
        assert client.get("/api/me", headers=acme.headers).status_code == 200


def test_an_unknown_tenant_is_refused(data_dir: Path, db_env: dict[str, str]) -> None:
    env = {**db_env, **CONFIGURED, "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TENANT": "nobody"}
    with serving(data_dir, env, "acme") as (client, _):
        refused = client.get("/api/me", headers=SINK)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the credential names no existing tenant"


def test_a_configured_role_gives_that_roles_permissions(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    env = {**db_env, **CONFIGURED, "BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_ROLE": "admin"}
    with serving(data_dir, env, "acme") as (client, _):
        body = me(client, SINK)
        assert body["role"] == "admin"
        assert set(body["permissions"]) == rails(client.app).identity.role_permissions["admin"]
        created = client.post("/api/apikeys", headers=SINK, json={"name": "x", "role": "viewer"})
        assert created.status_code == 201, created.text
        # It is not a user's session: the routes of one refuse it.
        switched = client.post("/api/auth/switch-tenant", headers=SINK, json={"tenant": "acme"})
        assert switched.status_code == 403


# -- what the kernel takes from register_auth_backends, and from a backend ----------------------
class Registered:
    """What ``auth_backends`` needs of a plugin set: ``collect``, here over fixed registrations."""

    def __init__(self, *registrations: tuple[str, Any]) -> None:
        self.registrations = registrations

    def collect(self, hook: str, make: Any) -> list[tuple[str, Any]]:
        assert hook == "register_auth_backends"
        return [
            (plugin, item) for plugin, given in self.registrations for item in make(plugin, given)
        ]


async def nobody(connection: Any, kernel: Any) -> Principal | None:
    return None


async def someone(connection: Any, kernel: Any) -> Principal | None:
    return None


def test_plugins_first_the_kernels_last_and_a_name_again_replaces() -> None:
    plugins = Registered(
        (KERNEL_PLUGIN, AuthBackend(name="bearer", authenticate=nobody)),
        ("a", AuthBackend(name="header", authenticate=nobody)),
        ("b", AuthBackend(name="cookie", authenticate=nobody)),
        ("c", AuthBackend(name="header", authenticate=someone)),
    )
    chosen = auth_backends(plugins, lambda plugin: plugin)  # type: ignore[arg-type]
    assert [view for _, view in chosen] == ["c", "b", KERNEL_PLUGIN]
    assert chosen[-1][0] is nobody  # the kernel's own backend is called as it is
    assert chosen[0][0] is not someone  # a plugin's is wrapped: the kernel admits its principals
    picked = auth_backends(plugins, lambda plugin: plugin, ["bearer", "cookie"])  # type: ignore[arg-type]
    assert [view for _, view in picked] == [KERNEL_PLUGIN, "b"]
    with pytest.raises(UnknownAuthBackendError, match="'ldap'; registered: bearer, header"):
        auth_backends(plugins, lambda plugin: plugin, ["ldap"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (object(), "plugin 'odd': register_auth_backends expects AuthBackend values, got <object"),
        (AuthBackend(name="token", authenticate=nobody), "plugin 'odd': auth backend name 'token'"),
        (AuthBackend(name="api_key", authenticate=nobody), "name 'api_key' is reserved"),
        (AuthBackend(name="x", authenticate=None), "plugin 'odd': auth backend 'x' needs an async"),
    ],
)
def test_a_bad_registration_is_refused_naming_the_plugin(item: object, reason: str) -> None:
    with pytest.raises(TypeError) as info:
        auth_backends(Registered(("odd", item)), lambda plugin: plugin)  # type: ignore[arg-type]
    assert reason in str(info.value)


async def test_a_principal_made_by_hand_is_held_to_the_role_map(
    dual_plugins: PluginSet, dual_tenant_a: Seeded
) -> None:
    acme = dual_tenant_a
    kernel_rails = Rails.build(dual_plugins.settings, dual_plugins)
    try:
        kernel = kernel_rails.kernel().for_plugin("kitchen_sink")
        authenticator = (await kernel_rails.identity.get()).authenticator
        made = await kernel.principal_for("acme", "member", subject="s")
        assert made == await kernel.principal_for(acme.tenant_id, "member", subject="s")
        admitted = await authenticator.admit(made, "sso")
        assert (admitted.via, admitted.tenant_id, admitted.role) == (
            "sso",
            acme.tenant_id,
            "member",
        )
        assert admitted.permissions == kernel_rails.identity.role_permissions["member"]

        def bad(**change: Any) -> Principal:
            return msgspec.structs.replace(made, **change)

        for wrong in (
            "not a principal",
            bad(permissions=made.permissions | {"apikeys.manage"}),
            bad(permissions=frozenset()),  # narrower without scopes: keys it made would not be
            bad(role="superuser"),
            bad(user_id=acme.user_id),  # a user's session is the kernel's to vouch for
        ):
            with pytest.raises(TypeError, match="'sso'"):
                await authenticator.admit(wrong, "sso")
        scoped = bad(scopes=("tenant.read",), permissions=frozenset({"tenant.read"}))
        assert (await authenticator.admit(scoped, "sso")).scoped
        with pytest.raises(NotAuthorizedException, match="no existing tenant"):
            await authenticator.admit(bad(tenant_id=uuid.uuid4()), "sso")
        with pytest.raises(NotAuthorizedException, match="no existing tenant"):
            await kernel.principal_for("globex", "viewer", subject="s")
        with pytest.raises(ValueError, match="unknown role 'superuser'"):
            await kernel.principal_for("acme", "superuser", subject="s")
    finally:
        await kernel_rails.close()
