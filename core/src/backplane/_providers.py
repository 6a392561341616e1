"""What handlers receive by injection: the kernel's rails, each bound to the current request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane.billing.http import header_results
from backplane.billing.usage import UsageRecorder
from backplane.db.engine import session_scope
from backplane.db.tenancy import bind_tenant
from backplane.identity.auth import Principal
from backplane.settings import Settings
from backplane.tasks.context import TaskQueue
from backplane.tasks.runtime import TaskRuntime


def constant(value: Any) -> Callable[[], Any]:
    """A dependency provider returning ``value`` (Litestar inspects providers' signatures)."""

    def provide() -> Any:
        return value

    return provide


def request_dependencies(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tasks: TaskRuntime,
    meters: dict[str, Any],
) -> dict[str, Provide | Callable[..., Any]]:
    """``db``, ``tasks``, ``usage`` and ``settings`` for every handler."""

    async def provide_db(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
        """A session scoped to the caller's tenant (public routes: no tenant, no tenant rows)."""
        principal = request.scope.get("user")
        async for session in session_scope(sessionmaker):
            if isinstance(principal, Principal):
                bind_tenant(session, principal.tenant_id)
            yield session

    def provide_tasks(db: NamedDependency[AsyncSession]) -> TaskQueue:
        return tasks.queue_for(db)

    def provide_usage(
        request: Request[Any, Any, Any], db: NamedDependency[AsyncSession]
    ) -> UsageRecorder:
        return UsageRecorder(db, meters, header_results(request.scope))

    return {
        "db": Provide(provide_db),
        "settings": Provide(constant(settings), sync_to_thread=False),
        "tasks": Provide(provide_tasks, sync_to_thread=False),
        "usage": Provide(provide_usage, sync_to_thread=False),
    }
