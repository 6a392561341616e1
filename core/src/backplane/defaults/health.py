"""Health: the public liveness and readiness endpoints load balancers call."""

from __future__ import annotations

from typing import Any

from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.health import HealthController

    register(HealthController, prefix="/")
