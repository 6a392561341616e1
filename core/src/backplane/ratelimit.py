"""Per-tenant rate limits of expensive actions: the guard ``rate_limit("webhooks.test")``
counts each call per (tenant, action) and refuses calls beyond the configured limit with 429,
``Retry-After`` and a message naming the limit.

A cap bounds how much a tenant *has* (webhook endpoints, API keys); a rate limit bounds how
often a tenant may make the server *do* something costly on its behalf: send an HTTP request to
a URL of its choosing, resolve a host name it chose, trial-run an uploaded model in a
subprocess. Cheap reads and writes are not limited. Each action's limit is a setting of
``limits`` (:class:`backplane.settings.LimitSettings`), over a fixed window of a minute or an
hour.

Counting is the login throttle's fixed window (:mod:`backplane.identity.throttle`): in this
process, or shared by every process through Redis when ``redis_url`` is set (without it, N
server processes allow up to N times the limit). If Redis does not answer, the action is
refused with 503: letting it through unthrottled is what the limit exists to prevent.

Every call counts, whatever its outcome (a refused upload ran its checks too). The throttles
are built once per application (:class:`RateLimits`); :func:`rate_limits_of` is the one place
a request finds them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS, HTTP_503_SERVICE_UNAVAILABLE

from backplane.identity.auth import Principal
from backplane.identity.throttle import (
    Throttle,
    ThrottleSettings,
    ThrottleUnavailableError,
    make_throttle,
)
from backplane.settings import LimitSettings, Settings
from backplane.state import rails_of

__all__ = [
    "ACTIONS",
    "Action",
    "RateLimits",
    "TooManyRequestsError",
    "check_rate",
    "rate_limit",
    "rate_limits_of",
]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


@dataclass(frozen=True)
class Action:
    """An expensive action: its code, the :class:`LimitSettings` field holding its limit, the
    window that limit counts over, and what to call a call of it in the 429 message."""

    code: str
    setting: str
    window_s: int
    calls: str

    def limit(self, limits: LimitSettings) -> int:
        value: int = getattr(limits, self.setting)
        return value


MINUTE: Final = 60
HOUR: Final = 3600
ACTIONS: Final = {
    action.code: action
    for action in (
        Action("webhooks.test", "webhook_tests_per_minute", MINUTE, "webhook test sends"),
        Action("webhooks.retry", "webhook_retries_per_minute", MINUTE, "webhook delivery retries"),
        Action("webhooks.url_check", "webhook_url_checks_per_minute", MINUTE, "webhook URL checks"),
        Action("models.upload", "model_uploads_per_hour", HOUR, "model uploads"),
    )
}
"""Every rate-limited action, by code."""


class TooManyRequestsError(HTTPException):
    status_code = HTTP_429_TOO_MANY_REQUESTS


class RateLimits:
    """One throttle per action, built from ``settings.limits`` once per application."""

    def __init__(self, settings: Settings) -> None:
        self.limits = settings.limits
        self._redis_url = settings.redis_url
        self._keyed: dict[tuple[int, int], Throttle] = {}
        """Throttles of :meth:`hit`, by (limit, window)."""
        self._throttles: dict[str, Throttle] = {
            code: make_throttle(
                settings.redis_url,
                ThrottleSettings(max_attempts=action.limit(self.limits), window_s=action.window_s),
            )
            for code, action in ACTIONS.items()
        }

    def __repr__(self) -> str:
        return f"RateLimits({self.limits!r})"

    async def check(self, tenant_id: uuid.UUID, code: str) -> None:
        """Count one call of action ``code`` by the tenant; raise 429 if it is over the limit
        (503 if the shared counter store does not answer)."""
        action = ACTIONS[code]
        try:
            decision = await self._throttles[code].hit(f"ratelimit:{code}:{tenant_id}")
        except ThrottleUnavailableError:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="the rate limit store is unavailable; try again later",
            ) from None
        if decision.allowed:
            return
        wait = max(1, decision.retry_after_s)
        period = "minute" if action.window_s == MINUTE else "hour"
        raise TooManyRequestsError(
            detail=(
                f"too many {action.calls}: this tenant may make {action.limit(self.limits)} "
                f"per {period}; try again in {wait} s"
            ),
            headers={"Retry-After": str(wait)},
        )

    async def hit(self, key: str, *, limit: int, window_s: int, calls: str) -> None:
        """Count one call under ``key`` against ``limit`` calls per ``window_s`` seconds; raise
        429 (``Retry-After``) past it, 503 if the shared counter store does not answer. The
        throttle of each (limit, window) pair is made on first use and kept (plugins take
        their limits from settings, so there are few). :meth:`backplane.Kernel.rate_limit`
        is how plugins reach it."""
        if limit < 1 or not 1 <= window_s <= 86_400:
            raise ValueError("a rate limit needs limit >= 1 and 1 <= window_s <= 86400")
        throttle = self._keyed.get((limit, window_s))
        if throttle is None:
            throttle = make_throttle(
                self._redis_url, ThrottleSettings(max_attempts=limit, window_s=window_s)
            )
            self._keyed[(limit, window_s)] = throttle
        try:
            decision = await throttle.hit(key)
        except ThrottleUnavailableError:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail="the rate limit store is unavailable; try again later",
            ) from None
        if decision.allowed:
            return
        wait = max(1, decision.retry_after_s)
        raise TooManyRequestsError(
            detail=f"too many {calls}: at most {limit} per {_period(window_s)}; "
            f"try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )

    async def aclose(self) -> None:
        """Release the throttles' connections (application shutdown)."""
        for throttle in (*self._throttles.values(), *self._keyed.values()):
            await throttle.aclose()


def _period(window_s: int) -> str:
    if window_s == MINUTE:
        return "minute"
    if window_s == HOUR:
        return "hour"
    if window_s == 86_400:
        return "day"
    return f"{window_s} s"


def rate_limits_of(connection: ASGIConnection[Any, Any, Any, Any]) -> RateLimits:
    """The application's rate limits (the one place that knows where they are kept)."""
    limits: RateLimits = rails_of(connection).rate_limits
    return limits


async def check_rate(connection: ASGIConnection[Any, Principal, Any, Any], code: str) -> None:
    """Count one call of ``code`` by the caller's tenant, raising 429 over the limit; for
    handlers where only some calls are expensive (the guard counts every call)."""
    await rate_limits_of(connection).check(connection.user.tenant_id, code)


def rate_limit(code: str) -> Guard:
    """A guard counting every call of the route as action ``code`` of the caller's tenant.

    Place it after the permission guard, so callers without the permission spend nothing. It
    runs before the request body is read: a refused upload is not received."""
    if code not in ACTIONS:
        raise ValueError(f"unknown rate-limited action {code!r}; known: {', '.join(ACTIONS)}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        await check_rate(connection, code)

    guard.__name__ = f"rate_limit_{code.replace('.', '_')}"
    return guard
