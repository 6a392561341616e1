"""``create_app(settings)``: the only place a Backplane Litestar application is built.

It only assembles: the kernel's services (:class:`~backplane.kernel.Rails`), the routes every
plugin and the kernel's defaults registered (:mod:`backplane.routing`), authentication, the
request rules of :mod:`backplane.web`, and the lifespan that starts tasks and calls the
``startup``/``shutdown`` hooks with the kernel.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware

from backplane._providers import request_dependencies
from backplane.audit.actor import AuditContextMiddleware
from backplane.billing.http import add_quota_headers, quota_exceeded_handler
from backplane.billing.usage import QuotaExceeded
from backplane.db.busy import PoolTimeoutError, pool_timeout_handler
from backplane.files.routes import FILE_ERROR_HANDLERS
from backplane.identity.auth import PUBLIC_OPT, AuthenticationMiddleware
from backplane.inference.service import MODEL_ERROR_HANDLERS
from backplane.kernel import Rails
from backplane.live.stopping import drain_on_exit_signals
from backplane.loading import load_plugins
from backplane.plugins import PluginSet
from backplane.routing import SecuredOperations, openapi, plugin_routers, plugin_templates
from backplane.settings import Settings, load_settings
from backplane.state import RAILS
from backplane.tasks.broker import EMBEDDED
from backplane.tasks.runtime import TaskRuntime
from backplane.telemetry import configure_from_environment, tracing_enabled
from backplane.web import harden, tag_request_span
from backplane.web.database_busy import OperationalError, operational_error_handler


def create_app(settings: Settings | None = None, plugins: PluginSet | None = None) -> Litestar:
    """Build the application: load plugins, mount their routes, wire the database and telemetry.

    ``plugins`` lets a caller that already loaded them (the CLI) avoid loading twice.
    """
    settings = settings or load_settings()
    configure_from_environment()
    plugins = plugins or load_plugins(settings)
    # Paths first: a plugin refused for a path another plugin owns contributes nothing else.
    routers = plugin_routers(plugins)
    rails = Rails.build(settings, plugins)
    kernel = rails.kernel()
    embedded_worker: list[dramatiq.Worker] = []

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        await rails.identity.try_start()
        await asyncio.to_thread(_start_tasks, rails.tasks, embedded_worker)
        await kernel.notify("startup")
        restore_signals = drain_on_exit_signals(rails.live)
        try:
            yield
        finally:
            restore_signals()
            rails.live.drain()  # open event streams end before anything else stops
            try:
                await kernel.notify("shutdown")
            finally:
                await asyncio.to_thread(_stop_tasks, rails.tasks, embedded_worker)
                await rails.close()

    openapi_config, swagger_assets = openapi()
    config = AppConfig(
        route_handlers=[swagger_assets, *routers],
        template_config=plugin_templates(plugins),
        dependencies=request_dependencies(rails),
        openapi_config=openapi_config,
        plugins=[SecuredOperations()],
        middleware=[
            DefineMiddleware(
                AuthenticationMiddleware,
                exclude_from_auth_key=PUBLIC_OPT,
                # The one path pattern: the OpenAPI routes Litestar builds (anchored).
                exclude=["^/schema(/|$)"],
            ),
            AuditContextMiddleware,  # the caller is the actor of what the request records
        ],
        lifespan=[lifespan],
        request_max_body_size=settings.server.max_request_body_bytes,
        exception_handlers={
            QuotaExceeded: quota_exceeded_handler,
            PoolTimeoutError: pool_timeout_handler,
            OperationalError: operational_error_handler,
            **MODEL_ERROR_HANDLERS,
            **FILE_ERROR_HANDLERS,
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
    app.state[RAILS] = rails
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
