"""How a database without a free pooled connection shows in HTTP: 503, retry shortly.

A request waits at most ``db.pool_timeout_s`` for a connection; then SQLAlchemy raises its
``TimeoutError`` and the client gets a 503 with ``Retry-After`` instead of a 500 (or, with no
limit, a stall of every request behind the slow ones).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1

__all__ = ["PoolTimeoutError", "pool_timeout_handler"]


def pool_timeout_handler(request: Request[Any, Any, Any], exc: PoolTimeoutError) -> Response[Any]:
    log.warning(
        "no database connection free within the pool timeout: %s %r",
        request.method,
        request.url.path,
    )
    return Response(
        {"status_code": 503, "detail": "the database is busy; retry shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
