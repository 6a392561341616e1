"""``create_app(settings)``: the only place a Backplane Litestar application is built."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dramatiq
from litestar import Controller, Litestar, Request, Router, get
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from backplane import __version__
from backplane._providers import constant, request_dependencies
from backplane.billing.context import configure as configure_billing
from backplane.billing.group import UsageWriter
from backplane.billing.http import add_quota_headers, quota_exceeded_handler
from backplane.billing.meters import collect_meters
from backplane.billing.providers import active_provider
from backplane.billing.usage import QuotaExceeded
from backplane.billing.webhooks.config import configure as configure_webhooks
from backplane.db.busy import PoolTimeoutError, pool_timeout_handler
from backplane.db.engine import Database
from backplane.health import HealthController
from backplane.identity.auth import (
    PLUGIN_OPT,
    PUBLIC_OPT,
    AuthenticationMiddleware,
    plugin_enabled_guard,
)
from backplane.identity.holder import IdentityHolder
from backplane.identity.permissions import role_permissions
from backplane.inference.api import models_router
from backplane.inference.routes import V2Controller
from backplane.inference.runtime import ModelCatalog
from backplane.plugins import KERNEL_PLUGIN, PluginSet, load_plugins
from backplane.ratelimit import RateLimits
from backplane.settings import Settings, load_settings
from backplane.tasks.broker import EMBEDDED
from backplane.tasks.runtime import TaskRuntime
from backplane.telemetry import configure_from_environment, tracing_enabled
from backplane.web import harden, tag_request_span

log = logging.getLogger(__name__)

SWAGGER_STATIC = "/schema/static"


def _route_items(plugin: str, *handlers: Any) -> list[Any]:
    for handler in handlers:
        ok = isinstance(handler, BaseRouteHandler | Router) or (
            inspect.isclass(handler) and issubclass(handler, Controller)
        )
        if not ok:
            raise TypeError(
                f"plugin {plugin!r}: register_routes expects controllers, routers or route "
                f"handlers, got {handler!r}"
            )
    return list(handlers)


def _plugin_routers(plugins: PluginSet) -> list[Router]:
    """One router per plugin under ``/api/<plugin>``, tagged with the plugin name.

    The kernel's own routes (plugin ``core``) are mounted under ``/api`` and keep their tags.
    """
    grouped: dict[str, list[Any]] = {}
    for plugin, handler in plugins.collect("register_routes", _route_items):
        grouped.setdefault(plugin, []).append(handler)
    routers = []
    for plugin, handlers in grouped.items():
        if plugin == KERNEL_PLUGIN:
            routers.append(Router(path="/api", route_handlers=handlers))
            continue
        # Plugin routes: only for tenants that have the plugin on (404 otherwise).
        value = plugins.settings_for(plugin)
        routers.append(
            Router(
                path=f"/api/{plugin}",
                route_handlers=handlers,
                tags=[plugin],
                opt={PLUGIN_OPT: plugin},
                guards=[plugin_enabled_guard],
                dependencies={"plugin_settings": Provide(constant(value), sync_to_thread=False)},
            )
        )
    return routers


@get(
    "/.well-known/jwks.json",
    opt={PUBLIC_OPT: True},
    tags=["auth"],
    summary="Public keys that verify access tokens",
)
async def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    identity = await request.app.state.identity_holder.get()
    await identity.refresh_keyring()
    keys: dict[str, Any] = identity.tokens.jwks()
    return keys


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Backplane",
        version=__version__,
        path="/schema",
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


def create_app(settings: Settings | None = None, plugins: PluginSet | None = None) -> Litestar:
    """Build the application: load plugins, mount their routes, wire the database and telemetry.

    ``plugins`` lets a caller that already loaded them (the CLI) avoid loading twice.
    """
    from swagger_ui_bundle import swagger_ui_path

    settings = settings or load_settings()
    configure_from_environment()
    plugins = plugins or load_plugins(settings)
    database = Database(settings)
    sessionmaker = database.sessions

    identity = IdentityHolder(settings, database, role_permissions(plugins))
    task_runtime = TaskRuntime(plugins)
    embedded_worker: list[dramatiq.Worker] = []

    meters = collect_meters(plugins)
    billing = configure_billing(plugins)  # for tasks and hooks, which get no app
    active_provider(billing.providers, settings.billing.provider)  # a typo fails at start
    catalog = ModelCatalog(plugins, sessionmaker)
    rate_limits = RateLimits(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await identity.try_start()
        await asyncio.to_thread(_start_tasks, task_runtime, embedded_worker)
        await plugins.acall("startup", app=app)
        try:
            yield
        finally:
            try:
                await plugins.acall("shutdown", app=app)
            finally:
                await asyncio.to_thread(_stop_tasks, task_runtime, embedded_worker)
                catalog.close()
                await identity.close()
                await rate_limits.aclose()
                await database.dispose()

    route_handlers: list[Any] = [
        HealthController,
        V2Controller,
        models_router(settings),
        jwks,
        create_static_files_router(
            path=SWAGGER_STATIC,
            directories=[str(swagger_ui_path)],
            include_in_schema=False,
            opt={PUBLIC_OPT: True},
        ),
        *_plugin_routers(plugins),
    ]
    config = AppConfig(
        route_handlers=route_handlers,
        dependencies=request_dependencies(settings, sessionmaker, task_runtime, meters),
        openapi_config=_openapi(),
        middleware=[
            DefineMiddleware(
                AuthenticationMiddleware,
                exclude_from_auth_key=PUBLIC_OPT,
                # The one path pattern: the OpenAPI routes Litestar builds (anchored).
                exclude=["^/schema(/|$)"],
            )
        ],
        lifespan=[lifespan],
        request_max_body_size=settings.server.max_request_body_bytes,
        exception_handlers={
            QuotaExceeded: quota_exceeded_handler,
            PoolTimeoutError: pool_timeout_handler,
        },
        before_send=[add_quota_headers],
        debug=False,
    )
    harden(config)  # screened request bodies and URLs, request ids, 500 logging, nosniff
    if tracing_enabled():
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        otel = OpenTelemetryConfig(server_request_hook_handler=tag_request_span)
        config.plugins.append(OpenTelemetryPlugin(otel))
    app = Litestar.from_config(config)
    app.state.update(
        settings=settings,
        secret_key=settings.resolved_secret_key(),
        plugins=plugins,
        engine=database.engine,
        database=database,
        identity_holder=identity,
        tasks=task_runtime,
        meters=meters,
        models=catalog,
        usage_writer=UsageWriter(
            sessionmaker, meters, unlimited_s=settings.inference.metering_overlap_s
        ),
        sessionmaker=sessionmaker,
        rate_limits=rate_limits,
    )
    configure_webhooks(settings)  # the settings webhook delivery tasks run with
    return app


def _start_tasks(runtime: TaskRuntime, worker: list[dramatiq.Worker]) -> None:
    """Relay always; in embedded mode also the scheduler and an in-process dramatiq worker
    (with a real broker, `backplane worker` processes consume and schedule)."""
    embedded = runtime.kind == EMBEDDED
    runtime.start(relay=True, scheduler=embedded)
    if embedded:
        worker.append(
            dramatiq.Worker(
                runtime.broker,
                worker_threads=runtime.settings.tasks.threads,
                worker_timeout=runtime.settings.tasks.poll_interval_ms,
            )
        )
        worker[0].start()


def _stop_tasks(runtime: TaskRuntime, worker: list[dramatiq.Worker]) -> None:
    if worker:
        worker[0].stop(timeout=int(runtime.settings.tasks.shutdown_timeout_s * 1000))
        worker.clear()
    runtime.stop()


def create_app_from_environment() -> Litestar:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app)."""
    settings = load_settings()
    app = create_app(settings)
    if settings.server.gc_freeze:
        app.on_startup.append(_freeze_startup_objects)
    return app


def _freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the garbage collector's reach.

    The imported libraries, the app and the loaded plugins are hundreds of thousands of
    long-lived objects; every full collection scanned them all, stopping the event loop for
    50-100 ms several times a minute under load (the p99 of V2 inference). Frozen, they are
    never scanned again; only what requests create is. For the serving process only: a test
    process building many apps would keep each one's garbage forever."""
    gc.collect()
    gc.freeze()
