"""Mounts beyond ``/api/<plugin>``: a prefix of the plugin's own, public routes by explicit
opt-in, static files and templates from package data (kitchen_sink, installed from its
directory as a wheel would be); and plugins defined here, in memory, whose paths collide with
each other or with the kernel's, refused at start-up with both names."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Controller, get
from litestar.testing import TestClient

from backplane import hookimpl
from backplane.app import create_app
from backplane.loading import load_plugins
from backplane.plugins import PluginLoadError, PluginRecord, PluginSet, SkipReason, Status
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import Seeded, seed_tenant

# -- kitchen_sink's mounts ---------------------------------------------------------------


def test_a_prefix_of_its_own_is_authenticated_and_scoped(
    client: TestClient[Any], tenant_a: Seeded
) -> None:
    assert client.get("/ks-records/statements").status_code == 401
    answer = client.get("/ks-records/statements", headers=tenant_a.headers)
    assert answer.status_code == 200
    assert answer.json() == {"tenant": str(tenant_a.tenant_id), "plugin": "kitchen_sink"}
    assert client.get("/api/kitchen_sink/statements", headers=tenant_a.headers).status_code == 404


def test_a_prefix_route_answers_404_where_the_plugin_is_switched_off(
    client: TestClient[Any], tenant_a: Seeded
) -> None:
    off = client.put(
        "/api/tenant/plugins/kitchen_sink", json={"enabled": False}, headers=tenant_a.headers
    )
    assert off.status_code == 200, off.text
    assert client.get("/ks-records/statements", headers=tenant_a.headers).status_code == 404


def test_public_routes_answer_without_credentials(client: TestClient[Any]) -> None:
    page = client.get("/api/kitchen_sink/signup", params={"visitor": "<b>eve</b>"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Sign up for hello" in page.text
    assert "&lt;b&gt;eve&lt;/b&gt;" in page.text  # templates are autoescaped
    tracked = client.get("/api/kitchen_sink/track/t0k3n")
    assert tracked.status_code == 200
    assert tracked.json() == {"token": "t0k3n", "tenant": None}  # no caller, no tenant


def test_static_files_are_served_from_the_installed_package(client: TestClient[Any]) -> None:
    from importlib.resources import files

    shipped = (files("bp_sample_kitchen_sink") / "static" / "kitchen.css").read_bytes()
    served = client.get("/api/kitchen_sink/assets/kitchen.css")
    assert served.status_code == 200
    assert served.content == shipped
    assert served.headers["content-type"].startswith("text/css")
    for outside in (
        "/api/kitchen_sink/assets/../plugin.py",
        "/api/kitchen_sink/assets/%2e%2e/plugin.py",
    ):
        assert client.get(outside).status_code in (400, 404)


def test_openapi_documents_public_routes_as_open(client: TestClient[Any]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert "security" not in paths["/api/kitchen_sink/signup"]["get"]
    assert "security" not in paths["/api/kitchen_sink/track/{token}"]["get"]
    assert paths["/ks-records/statements"]["get"]["security"]
    assert paths["/ks-records/statements"]["get"]["tags"] == ["kitchen_sink"]


# -- plugins defined in memory ----------------------------------------------------------------


class _Records(Controller):
    path = "/records"

    @get("/")
    async def records(self) -> str:
        return "records"


def plugin_module(name: str, register_routes: Callable[..., Any]) -> types.ModuleType:
    module = types.ModuleType(f"bp_test_{name}")
    module.register_routes = hookimpl(register_routes)  # type: ignore[attr-defined]
    return module


def with_plugins(data_dir: Path, *modules: tuple[str, types.ModuleType], **env: str) -> PluginSet:
    """The kernel and ``modules`` (in this order), as if discovered and loaded."""
    plugins = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "", **env}))
    for name, module in modules:
        plugins.manager.register(module, name=name)
        plugins.order.append(name)
        plugins.records[name] = PluginRecord(
            name=name, status=Status.LOADED, module=module.__name__
        )
    return plugins


def claiming(*paths: str, **options: Any) -> Callable[..., Any]:
    def register_routes(register: Any) -> None:
        for path in paths:
            register(_Records, prefix=path, **options)

    return register_routes


def test_two_plugins_claiming_one_prefix_the_later_is_skipped_naming_both(
    data_dir: Path,
) -> None:
    plugins = with_plugins(
        data_dir,
        ("alpha", plugin_module("alpha", claiming("/lrs"))),
        ("beta", plugin_module("beta", claiming("/lrs/v2"))),
    )
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    app = create_app(plugins.settings, plugins=plugins)
    record = plugins.records["beta"]
    assert record.status is Status.SKIPPED
    assert record.reason_code is SkipReason.PATH_CONFLICT
    assert "'alpha'" in (record.reason or "")
    assert "'beta'" in (record.reason or "")
    assert "'/lrs'" in (record.reason or "")
    assert plugins.loaded == ["core", "alpha"]
    with TestClient(app) as client:
        assert client.get("/lrs/records", headers=tenant.headers).text == "records"
        assert client.get("/lrs/v2/records", headers=tenant.headers).status_code == 404


def test_a_path_conflict_stops_start_up_in_strict_mode(data_dir: Path) -> None:
    plugins = with_plugins(
        data_dir,
        ("alpha", plugin_module("alpha", claiming("/lrs/v2"))),
        ("beta", plugin_module("beta", claiming("/lrs"))),
        BACKPLANE_STRICT_PLUGINS="1",
    )
    with pytest.raises(PluginLoadError, match=r"plugin 'beta'.*'alpha'"):
        create_app(plugins.settings, plugins=plugins)


def test_one_plugin_may_register_several_times_under_its_prefix(data_dir: Path) -> None:
    """Also a well-known URI of its own (RFC 8615): the kernel owns only its own there."""
    paths = ("/lrs", "/lrs", "/.well-known/lrs-configuration")
    plugins = with_plugins(data_dir, ("alpha", plugin_module("alpha", claiming(*paths))))
    migrate(plugins)
    tenant = seed_tenant(plugins, "acme")
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        assert plugins.loaded == ["core", "alpha"]
        assert client.get("/lrs/records", headers=tenant.headers).text == "records"
        found = client.get("/.well-known/lrs-configuration/records", headers=tenant.headers)
        assert found.text == "records"
        assert client.get("/.well-known/jwks.json").status_code == 200


@pytest.mark.parametrize(
    "prefix",
    [
        "/api",
        "/api/beta",
        "/v2",
        "/health/deep",
        "/schema",
        "/.well-known",
        "/.well-known/jwks.json",
    ],
)
def test_the_kernels_paths_cannot_be_claimed(data_dir: Path, prefix: str) -> None:
    plugins = with_plugins(data_dir, ("alpha", plugin_module("alpha", claiming(prefix))))
    create_app(plugins.settings, plugins=plugins)
    record = plugins.records["alpha"]
    assert record.reason_code is SkipReason.PATH_CONFLICT
    assert "reserved" in (record.reason or "")


@pytest.mark.parametrize(
    "prefix", ["lrs", "/LRS", "/lrs/", "/", "/a b", "/lrs//x", "/lrs/../api", "/."]
)
def test_a_malformed_prefix_is_refused(data_dir: Path, prefix: str) -> None:
    plugins = with_plugins(data_dir, ("alpha", plugin_module("alpha", claiming(prefix))))
    create_app(plugins.settings, plugins=plugins)
    record = plugins.records["alpha"]
    assert record.reason_code is SkipReason.HOOK_ERROR
    assert "must be an absolute path" in (record.reason or "")


def test_a_handler_made_public_without_opting_in_is_refused(data_dir: Path) -> None:
    @get("/open", opt={"public": True})
    async def sneaky() -> str:
        return "open"

    class Sneaky(Controller):
        path = "/c"
        opt = {"public": True}

        @get("/")
        async def inside(self) -> str:
            return "open"

    for item in (sneaky, Sneaky):
        plugins = with_plugins(
            data_dir, ("alpha", plugin_module("alpha", lambda register, i=item: register(i)))
        )
        create_app(plugins.settings, plugins=plugins)
        record = plugins.records["alpha"]
        assert record.reason_code is SkipReason.HOOK_ERROR, item
        assert "register(..., public=True)" in (record.reason or "")
    # Declared where it is registered, the same handler is public.
    plugins = with_plugins(
        data_dir,
        ("alpha", plugin_module("alpha", lambda register: register(sneaky, public=True))),
    )
    with TestClient(create_app(plugins.settings, plugins=plugins)) as client:
        assert client.get("/api/alpha/open").text == "open"
