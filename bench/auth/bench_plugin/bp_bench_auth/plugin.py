"""Entry point ``bench_auth``: routes under ``/api/bench_auth``, one migration branch.

Built like a third party's plugin: only names from ``backplane.__all__``, heavy imports inside
the hooks.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane import PluginInfo, hookimpl

plugin = PluginInfo(
    name="bench_auth",
    requires_core=">=0.1,<0.2",
    description="Benchmark plugin: an authenticated, tenant-scoped one-row GET.",
)


@hookimpl
def register_routes(register: Any) -> None:
    from bp_bench_auth.routes import get_item

    register(get_item)


@hookimpl
def register_migrations(register: Any) -> None:
    from bp_bench_auth.models import BenchItem

    register(files(__package__) / "migrations", branch="bench_auth", metadata=BenchItem.metadata)
