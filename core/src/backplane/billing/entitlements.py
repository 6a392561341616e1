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
from backplane.db.engine import Database
from backplane.db.tenancy import bind_tenant
from backplane.identity.auth import current_principal
from backplane.settings import Settings
from backplane.state import rails_of


class EntitlementMissing(HTTPException):
    status_code = 402


def features_cache(
    database: Database, settings: Settings
) -> RefreshAheadCache[uuid.UUID, frozenset[str]]:
    """The per-process cache of tenants' plan features (one per application)."""

    async def read(tenant_id: uuid.UUID) -> frozenset[str]:
        async with database.sessions() as session:
            bind_tenant(session, tenant_id)
            return await features_of(session, tenant_id)

    return RefreshAheadCache(read, settings.billing.entitlement_cache_s, name="plan features")


def requires_entitlement(feature: str) -> Any:
    """A guard: the caller's plan must include boolean entitlement ``feature`` (402 otherwise)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None:
            raise EntitlementMissing(detail=f"plan feature {feature!r} needs a tenant")
        if feature not in await rails_of(connection).features.get(principal.tenant_id):
            raise EntitlementMissing(
                detail=f"your plan does not include {feature!r}", extra={"entitlement": feature}
            )

    guard.__name__ = f"requires_entitlement_{feature.replace('.', '_')}"
    return guard
