"""Identity: the login and tenant API, its permissions, the signing keys' JWKS, credential
housekeeping, and the built-in authentication (access tokens and API keys)."""

from __future__ import annotations

from typing import Any

from backplane._contract import AuthBackend, Permission, Role
from backplane.hookspecs import hookimpl

EVERYONE: tuple[Role, ...] = ("owner", "admin", "member", "viewer")


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.identity.routes import ROUTES, jwks

    register(*ROUTES)
    register(jwks, prefix="/")


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="tenant.read",
            roles=EVERYONE,
            description="See the tenant, its members and plugins",
        ),
        Permission(
            code="tenant.members.manage",
            roles=("owner", "admin"),
            description="Add, change and remove members (never above one's own role)",
        ),
        Permission(
            code="tenant.plugins.manage",
            roles=("owner", "admin"),
            description="Switch plugins on and off for the tenant",
        ),
        Permission(
            code="apikeys.manage",
            roles=("owner", "admin"),
            description="Create, list and revoke the tenant's API keys",
        ),
    )


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane.identity.maintenance import prune_expired_credentials

    register(prune_expired_credentials, queue="backplane", schedule="17 * * * *")


@hookimpl
def register_auth_backends(register: Any) -> None:
    from backplane.identity.auth import authenticate_bearer

    register(AuthBackend(name="bearer", authenticate=authenticate_bearer))
