"""Mounting what ``register_routes`` gave: each plugin under ``/api/<plugin>`` or its own
prefixes (checked by :mod:`backplane.mounts`), the kernel's own routes where they say (``/api``
by default; the V2 protocol at ``/v2``, health at ``/health``), and the OpenAPI schema with its
bundled Swagger UI (nothing from a CDN), whose security schemes let ``/schema`` authorize with
an API key or an access token."""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.static_files import create_static_files_router

from backplane import __version__
from backplane._contract import StaticFiles, Templates
from backplane._providers import constant
from backplane.identity.auth import PLUGIN_OPT, PUBLIC_OPT, plugin_enabled_guard
from backplane.mounts import claim_paths, static_router, template_config
from backplane.plugins import KERNEL_PLUGIN, PluginSet

SWAGGER_STATIC = "/schema/static"

SECURITY_SCHEMES = {
    "ApiKey": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="bp_<id>_<secret>",
        description="An API key (`backplane apikeys create`, `POST /api/apikeys`), sent as "
        "`Authorization: Bearer bp_…` (or in `X-API-Key`).",
    ),
    "AccessToken": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="An access token from `POST /api/auth/login` (`access_token`), sent as "
        "`Authorization: Bearer <token>`.",
    ),
}
SECURITY: list[SecurityRequirement] = [{name: []} for name in SECURITY_SCHEMES]
"""Either scheme authenticates an operation (a list of alternatives in OpenAPI)."""


def plugin_routers(plugins: PluginSet) -> list[Router]:
    """The kernel's routes where they asked (``/api`` by default); each plugin's under
    ``/api/<plugin>`` or the prefixes it claimed (:mod:`backplane.mounts`), tagged with its
    name, answering 404 to tenants that switched the plugin off (its public routes, having no
    caller, answer everyone: they check what they serve themselves)."""
    kernel: dict[str, list[Any]] = {}
    grouped: dict[tuple[str, str, bool], list[Any]] = {}
    for plugin, mount in claim_paths(plugins):
        item = mount.item
        if isinstance(item, Templates):
            continue
        if isinstance(item, StaticFiles):
            item = static_router(plugin, item)
        if plugin == KERNEL_PLUGIN:
            kernel.setdefault(mount.prefix, []).append(item)
        else:
            grouped.setdefault((plugin, mount.prefix, mount.public), []).append(item)
    routers = [Router(path=prefix, route_handlers=handlers) for prefix, handlers in kernel.items()]
    for (plugin, prefix, public), handlers in grouped.items():
        value = plugins.settings_for(plugin)
        opt: dict[str, Any] = {PLUGIN_OPT: plugin}
        if public:
            opt[PUBLIC_OPT] = True
        routers.append(
            Router(
                path=prefix,
                route_handlers=handlers,
                tags=[plugin],
                opt=opt,
                guards=[plugin_enabled_guard],
                dependencies={"plugin_settings": Provide(constant(value), sync_to_thread=False)},
            )
        )
    return routers


def plugin_templates(plugins: PluginSet) -> Any:
    """The template configuration of every plugin's :class:`~backplane.Templates` (or None)."""
    found = [(p, m.item) for p, m in claim_paths(plugins) if isinstance(m.item, Templates)]
    return template_config(found)


def openapi() -> tuple[OpenAPIConfig, Router]:
    """The OpenAPI configuration at ``/schema`` and the router of its Swagger UI assets."""
    from swagger_ui_bundle import swagger_ui_path

    config = OpenAPIConfig(
        title="Backplane",
        version=__version__,
        path="/schema",
        components=Components(security_schemes=dict(SECURITY_SCHEMES)),
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
                css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
                standalone_preset_js_url=f"{SWAGGER_STATIC}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' href='{SWAGGER_STATIC}/favicon-32x32.png'>",
            ),
            JsonRenderPlugin(path="/openapi.json"),
        ],
    )
    assets = create_static_files_router(
        path=SWAGGER_STATIC,
        directories=[str(swagger_ui_path)],
        include_in_schema=False,
        opt={PUBLIC_OPT: True},
    )
    return config, assets


class SecuredOperations(ReceiveRoutePlugin):
    """Marks every operation the authentication middleware guards with :data:`SECURITY`, so
    that Swagger sends the credential it was given. Decided per handler once its ``opt`` is
    merged from its layers, by the same ``public`` flag the middleware reads: an operation is
    documented as open exactly when it is."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:  # one handler may serve several paths
            if not handler.opt.get(PUBLIC_OPT):
                given = list(handler.security or ())
                handler.security = given + [s for s in SECURITY if s not in given]
