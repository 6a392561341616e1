"""Mounting what ``register_routes`` gave: each plugin under ``/api/<plugin>``, the kernel's
own routes where they say (``/api`` by default; the V2 protocol at ``/v2``, health at
``/health``), and the OpenAPI schema with its bundled Swagger UI (nothing from a CDN), whose
security schemes let ``/schema`` authorize with an API key or an access token."""

from __future__ import annotations

import inspect
from typing import Any

from litestar import Controller, Router
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.static_files import create_static_files_router

from backplane import __version__
from backplane._providers import constant
from backplane.identity.auth import PLUGIN_OPT, PUBLIC_OPT, plugin_enabled_guard
from backplane.plugins import KERNEL_PLUGIN, PluginSet

SWAGGER_STATIC = "/schema/static"
API = "/api"

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


def _route_items(plugin: str, *handlers: Any, prefix: str = API) -> list[tuple[str, Any]]:
    """One ``register(*handlers)`` call; only the kernel may mount elsewhere than ``/api``."""
    if prefix != API and plugin != KERNEL_PLUGIN:
        raise TypeError(f"plugin {plugin!r}: routes are mounted under /api/{plugin}, no prefix")
    for handler in handlers:
        ok = isinstance(handler, BaseRouteHandler | Router) or (
            inspect.isclass(handler) and issubclass(handler, Controller)
        )
        if not ok:
            raise TypeError(
                f"plugin {plugin!r}: register_routes expects controllers, routers or route "
                f"handlers, got {handler!r}"
            )
    return [(prefix, handler) for handler in handlers]


def plugin_routers(plugins: PluginSet) -> list[Router]:
    """One router per plugin under ``/api/<plugin>``, tagged with the plugin name, answering
    404 to tenants that switched the plugin off; the kernel's routes where they asked."""
    kernel: dict[str, list[Any]] = {}
    grouped: dict[str, list[Any]] = {}
    for plugin, (prefix, handler) in plugins.collect("register_routes", _route_items):
        if plugin == KERNEL_PLUGIN:
            kernel.setdefault(prefix, []).append(handler)
        else:
            grouped.setdefault(plugin, []).append(handler)
    routers = [Router(path=prefix, route_handlers=handlers) for prefix, handlers in kernel.items()]
    for plugin, handlers in grouped.items():
        value = plugins.settings_for(plugin)
        routers.append(
            Router(
                path=f"{API}/{plugin}",
                route_handlers=handlers,
                tags=[plugin],
                opt={PLUGIN_OPT: plugin},
                guards=[plugin_enabled_guard],
                dependencies={"plugin_settings": Provide(constant(value), sync_to_thread=False)},
            )
        )
    return routers


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
