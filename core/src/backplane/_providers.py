"""What handlers receive by injection: the kernel view of the request, and its parts by name.

``kernel`` is the request's :class:`~backplane.kernel.Kernel` (the route's plugin, the caller's
tenant and principal, the request's session); ``db``, ``tasks``, ``usage`` and ``settings``
are its parts, for handlers that need only one of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.billing.http import header_results
from backplane.billing.usage import UsageRecorder
from backplane.db.engine import session_scope
from backplane.db.tenancy import bind_tenant
from backplane.identity.auth import PLUGIN_OPT, Principal
from backplane.kernel import Kernel, Rails
from backplane.plugins import KERNEL_PLUGIN
from backplane.tasks.context import TaskQueue


def constant(value: Any) -> Callable[[], Any]:
    """A dependency provider returning ``value`` (Litestar inspects providers' signatures)."""

    def provide() -> Any:
        return value

    return provide


def request_dependencies(rails: Rails) -> dict[str, Provide | Callable[..., Any]]:
    """``kernel``, ``db``, ``tasks``, ``usage`` and ``settings`` for every handler."""

    async def provide_db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
        """A session scoped to the caller's tenant (public routes: no tenant, no tenant rows),
        committed when the handler returns, rolled back if it raises."""
        principal = request.scope.get("user")
        async for session in session_scope(rails.database.sessions):
            if isinstance(principal, Principal):
                bind_tenant(session, principal.tenant_id)
            yield session

    def provide_kernel(
        request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
    ) -> Kernel:
        principal = request.scope.get("user")
        bound = principal if isinstance(principal, Principal) else None
        return Kernel(
            rails,
            request.route_handler.opt.get(PLUGIN_OPT, KERNEL_PLUGIN),
            db=db,
            tenant_id=bound.tenant_id if bound else None,
            principal=bound,
            usage_results=header_results(request.scope),
        )

    def provide_tasks(kernel: NamedDependency[Kernel]) -> TaskQueue:
        return kernel.tasks

    def provide_usage(kernel: NamedDependency[Kernel]) -> UsageRecorder:
        return kernel.usage

    return {
        "db": Provide(provide_db),
        "kernel": Provide(provide_kernel, sync_to_thread=False),
        "settings": Provide(constant(rails.public), sync_to_thread=False),
        "tasks": Provide(provide_tasks, sync_to_thread=False),
        "usage": Provide(provide_usage, sync_to_thread=False),
    }
