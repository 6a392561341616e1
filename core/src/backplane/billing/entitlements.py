"""``requires_entitlement("feature")``: a route guard answering 402 when the plan lacks a feature.

Boolean entitlements are read from the tenant's current plan and cached per process for
``billing.entitlement_cache_s`` (a plan change made by this process is seen at once; by other
processes within that time) and re-read in the background before then, so the guard adds no
query to most requests and none that a request waits for under steady traffic.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

from backplane.billing.subscriptions import features_of
from backplane.caching import RefreshAheadCache
from backplane.db.tenancy import bind_tenant
from backplane.identity.auth import current_principal

CACHE_KEY = "billing_features"


class EntitlementMissing(HTTPException):
    status_code = 402


def _cache(state: Any) -> RefreshAheadCache[uuid.UUID, frozenset[str]]:
    cache: RefreshAheadCache[uuid.UUID, frozenset[str]] | None = getattr(state, CACHE_KEY, None)
    if cache is None:

        async def read(tenant_id: uuid.UUID) -> frozenset[str]:
            async with state.sessionmaker() as session:
                bind_tenant(session, tenant_id)
                return await features_of(session, tenant_id)

        cache = RefreshAheadCache(
            read, state.settings.billing.entitlement_cache_s, name="plan features"
        )
        setattr(state, CACHE_KEY, cache)
    return cache


def forget_features(state: Any, tenant_id: uuid.UUID) -> None:
    """Drop a tenant's cached features (after its plan changed in this process)."""
    _cache(state).forget(tenant_id)


async def tenant_features(state: Any, tenant_id: uuid.UUID) -> frozenset[str]:
    return await _cache(state).get(tenant_id)


def requires_entitlement(feature: str) -> Any:
    """A guard: the caller's plan must include boolean entitlement ``feature`` (402 otherwise)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None:
            raise EntitlementMissing(detail=f"plan feature {feature!r} needs a tenant")
        if feature not in await tenant_features(connection.app.state, principal.tenant_id):
            raise EntitlementMissing(
                detail=f"your plan does not include {feature!r}",
                extra={"entitlement": feature},
            )

    guard.__name__ = f"requires_entitlement_{feature.replace('.', '_')}"
    return guard
