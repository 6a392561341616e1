"""``requires_entitlement("feature")``: a route guard answering 402 when the plan lacks a feature.

Boolean entitlements are read from the tenant's current plan and cached per process for
``billing.entitlement_cache_s`` (a plan change made by this process is seen at once; by other
processes within that time), so the guard adds no query to most requests.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler

from backplane.billing.subscriptions import features_of
from backplane.db.tenancy import bind_tenant
from backplane.identity.auth import current_principal

CACHE_KEY = "billing_features"


class EntitlementMissing(HTTPException):
    status_code = 402


def _cache(state: Any) -> dict[uuid.UUID, tuple[frozenset[str], float]]:
    cache: dict[uuid.UUID, tuple[frozenset[str], float]] | None = getattr(state, CACHE_KEY, None)
    if cache is None:
        cache = {}
        setattr(state, CACHE_KEY, cache)
    return cache


def forget_features(state: Any, tenant_id: uuid.UUID) -> None:
    """Drop a tenant's cached features (after its plan changed in this process)."""
    _cache(state).pop(tenant_id, None)


async def tenant_features(state: Any, tenant_id: uuid.UUID) -> frozenset[str]:
    cache = _cache(state)
    cached = cache.get(tenant_id)
    ttl = state.settings.billing.entitlement_cache_s
    if cached is not None and time.monotonic() - cached[1] <= ttl:
        return cached[0]
    async with state.sessionmaker() as session:
        bind_tenant(session, tenant_id)
        features = await features_of(session, tenant_id)
    cache[tenant_id] = (features, time.monotonic())
    return features


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
