"""Entry point ``bench_tasks``: registers the no-op task ``bench_tasks.noop``.

Built like a third party's plugin: only names from ``backplane.__all__``. No tables, so no
migrations: the outbox the tasks go through is the kernel's own (``backplane db upgrade``).
"""

from __future__ import annotations

from typing import Any

from backplane import PluginInfo, hookimpl

QUEUE = "bench_tasks"
"""Its own queue, so the benchmark's workers consume nothing else on a shared broker."""

plugin = PluginInfo(
    name="bench_tasks",
    requires_core=">=0.1,<0.2",
    description="Benchmark plugin: a no-op background task.",
)


async def noop(kernel: Any) -> None:
    """Does nothing: what is measured is the kernel's wrapper, outbox and relay."""


@hookimpl
def register_tasks(register: Any) -> None:
    register(noop, queue=QUEUE)
