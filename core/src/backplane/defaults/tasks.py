"""Tasks: the hourly retention of finished history (tasks, schedule periods, deliveries,
unreferenced model files)."""

from __future__ import annotations

from typing import Any

from backplane.hookspecs import hookimpl


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane.retention import prune_history

    # Hourly: finished tasks, past schedule periods and finished webhook deliveries, once old.
    register(prune_history, queue="backplane", schedule="41 * * * *", time_limit_ms=600_000)
