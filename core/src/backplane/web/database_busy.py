"""SQLite's "database is locked" in HTTP: 503 with ``Retry-After`` (see :mod:`backplane.db.busy`);
any other operational error of the database stays an unhandled error (a logged 500)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from sqlalchemy.exc import OperationalError

from backplane.db.busy import busy_response, sqlite_locked
from backplane.web._diagnostics import internal_error_response

log = logging.getLogger(__name__)

__all__ = ["OperationalError", "operational_error_handler"]


def operational_error_handler(
    request: Request[Any, Any, Any], exc: OperationalError
) -> Response[Any]:
    """503 for SQLite's lock timeout; any other operational error is unhandled (a 500)."""
    if not sqlite_locked(exc):
        return internal_error_response(request, exc)
    log.warning(
        "SQLite write lock held by another writer past db.sqlite_busy_timeout_s: %s %r",
        request.method,
        request.url.path,
    )
    return busy_response()
