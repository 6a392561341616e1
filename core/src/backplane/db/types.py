"""Column types that behave the same on SQLite as on PostgreSQL.

SQLite has no datetime type: SQLAlchemy stores ``DateTime`` as text without a zone and reads it
back naive, even for ``DateTime(timezone=True)``, so one row showed ``…Z`` in a POST response
(the value in memory) and no zone in a GET (the value read back), and an aware value in another
zone was stored as its wall-clock time. :func:`aware_datetimes` fixes that for a SQLite engine
as a whole, so every table (the kernel's and every plugin's, ``DateTime(timezone=True)`` as
written) reads aware UTC datetimes, as on PostgreSQL, with nothing asked of plugin authors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import types
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect


class AwareDateTime(sqlite.DATETIME):
    """SQLite's ``DATETIME``; with ``timezone=True``, written in UTC and read back aware (UTC).
    Naive values are taken to be UTC already (as ``CURRENT_TIMESTAMP`` server defaults are)."""

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)
        if not self.timezone or process is None:
            return process
        to_text = process

        def bind(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC)
            return to_text(value)

        return bind

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        process = super().result_processor(dialect, coltype)
        if not self.timezone or process is None:
            return process
        from_text = process

        def result(value: Any) -> Any:
            moment = from_text(value)
            if isinstance(moment, datetime) and moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment

        return result


def aware_datetimes(dialect: Dialect) -> None:
    """Make ``dialect`` (a SQLite engine's) use :class:`AwareDateTime` for every ``DateTime``
    column: dialects adapt generic types through their ``colspecs``, so tables need not change."""
    dialect.colspecs = {
        **dialect.colspecs,
        types.DateTime: AwareDateTime,
        types.TIMESTAMP: AwareDateTime,
    }
