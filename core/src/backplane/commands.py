"""``backplane.pass_kernel``: what a plugin's CLI command needs to reach the kernel.

A command decorated with it is an ``async`` function whose first argument is the plugin's own
:class:`~backplane.Kernel`, built for the command from the process's settings and plugins and
released when it returns; ``async with kernel.tenant("acme") as k:`` then works on one tenant's
data, as a handler would, and ``async with kernel.all_tenants(reason) as k:`` (commands only,
audited) on every tenant's. ``kernel.plugin_settings`` is the plugin's validated settings
struct. Settings errors and a broken plugin set are reported as click errors, never as
tracebacks.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def pass_kernel(command: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Run the ``async`` ``command(kernel, *args, **kwargs)`` with the kernel of the plugin that
    defines it (found by its module's package; the kernel's own view otherwise)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> T:
        from backplane.cli import _context
        from backplane.kernel import Kernel, UnknownTenantError
        from backplane.plugins import KERNEL_PLUGIN

        plugins = _context.plugin_set()
        package = command.__module__.partition(".")[0]
        owner = next(
            (
                r.name
                for r in plugins.records.values()
                if r.module and r.module.partition(".")[0] == package and r.name in plugins.loaded
            ),
            None,
        )

        async def go(rails: Any) -> T:
            kernel = Kernel(rails, owner or KERNEL_PLUGIN, operator=True)
            return await command(kernel, *args, **kwargs)

        return _context.with_rails(go, UnknownTenantError)

    return run
