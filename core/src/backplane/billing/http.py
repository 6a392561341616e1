"""How quotas show in HTTP: 429 with the meter, limit and reset time, and the same on headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from backplane.billing.usage import QuotaExceeded, UsageResult

RESULTS_KEY = "backplane.usage_results"
"""Key in the ASGI scope under which a request's usage results wait for the response."""


def header_results(scope: Scope) -> list[UsageResult]:
    """This request's usage results that :func:`add_quota_headers` turns into headers (the
    list is created on first use; append to it)."""
    results: list[UsageResult] = cast(dict[str, Any], scope).setdefault(RESULTS_KEY, [])
    return results


def quota_headers(result: UsageResult | QuotaExceeded) -> dict[str, str]:
    limit, used, reset = result.limit, result.used, result.reset_at
    if limit is None or used is None or reset is None:
        return {}
    return {
        "X-Quota-Meter": result.meter,
        "X-Quota-Limit": f"{limit:g}",
        "X-Quota-Remaining": f"{max(limit - used, 0):g}",
        "X-Quota-Reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def quota_exceeded_handler(request: Request[Any, Any, Any], exc: QuotaExceeded) -> Response[Any]:
    retry_after = max(1, int((exc.reset_at - datetime.now(UTC)).total_seconds()))
    return Response(
        {
            "status_code": 429,
            "detail": str(exc),
            "meter": exc.meter,
            "limit": exc.limit,
            "used": exc.used,
            "reset_at": exc.reset_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        status_code=429,
        headers={**quota_headers(exc), "Retry-After": str(retry_after)},
    )


async def add_quota_headers(message: Message, scope: Scope) -> None:
    """``before_send``: headers for the quota this request consumed from, if any."""
    if message["type"] != "http.response.start":
        return
    results: list[UsageResult] = cast(dict[str, Any], scope).get(RESULTS_KEY) or []
    if not results:
        return
    headers = MutableScopeHeaders.from_message(message)
    for result in results:
        headers.update(quota_headers(result))
