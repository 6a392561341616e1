"""Liveness and readiness endpoints (public by design: load balancers call them)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from backplane.db.engine import ping


class ComponentHealth(msgspec.Struct):
    status: str
    detail: str | None = None


class PluginHealth(msgspec.Struct):
    name: str
    status: str
    version: str | None
    reason: str | None = None


class Readiness(msgspec.Struct):
    status: str
    version: str
    database: ComponentHealth
    plugins: list[PluginHealth]


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    include_in_schema = True

    @get("/live", summary="The process is up")
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Database reachable; status of every plugin", status_code=HTTP_200_OK)
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        from backplane import __version__

        state = request.app.state
        problem = await ping(state.engine, state.settings.db.health_timeout_s)
        database = ComponentHealth(status="ok" if problem is None else "error", detail=problem)
        plugins = [
            PluginHealth(name=r.name, status=r.status.value, version=r.version, reason=r.reason)
            for r in state.plugins.records.values()
        ]
        ok = problem is None
        body = Readiness(status="ok" if ok else "error", version=__version__, database=database,
                         plugins=plugins)
        return Response(body, status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE)
