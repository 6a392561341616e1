"""The audit trail: ``GET /api/audit`` and the permission that reads it."""

from __future__ import annotations

from typing import Any

from backplane._contract import Permission
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.audit.routes import ROUTES

    register(*ROUTES)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="audit.read",
            roles=("owner", "admin"),
            description="Read the tenant's audit trail (GET /api/audit)",
        )
    )
