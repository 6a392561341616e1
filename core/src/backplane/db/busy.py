"""How a busy database shows in HTTP: 503, retry shortly.

A request waits at most ``db.pool_timeout_s`` for a connection; then SQLAlchemy raises its
``TimeoutError`` and the client gets a 503 with ``Retry-After`` instead of a 500 (or, with no
limit, a stall of every request behind the slow ones). Likewise on SQLite, a write that waited
``db.sqlite_busy_timeout_s`` for another writer's lock ("database is locked"): nothing was
written (the request's transaction rolls back), so the client may simply try again.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from litestar import Request, Response
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1

__all__ = ["PoolTimeoutError", "busy_response", "pool_timeout_handler", "sqlite_locked"]


def pool_timeout_handler(request: Request[Any, Any, Any], exc: PoolTimeoutError) -> Response[Any]:
    log.warning(
        "no database connection free within the pool timeout: %s %r",
        request.method,
        request.url.path,
    )
    return busy_response()


def sqlite_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked": its single write lock stayed held past the busy timeout."""
    orig = getattr(exc, "orig", None)
    return isinstance(orig, sqlite3.OperationalError) and str(orig).startswith(
        ("database is locked", "database table is locked")
    )


def busy_response() -> Response[Any]:
    """503 with ``Retry-After``: the database is busy, nothing was done, try again shortly."""
    return Response(
        {"status_code": 503, "detail": "the database is busy; retry shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
