"""What a kernel test may look at inside a running application: its rails (the services the
kernel facade is a view of). Plugin code never gets these; kernel tests check them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from backplane.kernel import Kernel, Rails
from backplane.state import RAILS
from backplane.tasks.runtime import TaskRuntime


def rails(app: Any) -> Rails:
    """The rails of a Litestar app built by ``create_app``."""
    found: Rails = app.state[RAILS]
    return found


def task_runtime(plugins: Any, broker: Any = None) -> TaskRuntime:
    """A process's task runtime, as ``backplane worker`` builds it (optionally on a stub
    broker), with its rails: actors get kernel views."""
    return Rails.build(plugins.settings, plugins, broker=broker).tasks


@asynccontextmanager
async def kernel_on(
    plugins: Any,
    session: AsyncSession,
    maintenance: Callable[[str], AbstractAsyncContextManager[AsyncSession]] | None = None,
) -> AsyncIterator[Kernel]:
    """The kernel a kernel task receives, on ``session`` (and ``maintenance`` for the kernel's
    own cross-tenant tasks), for calling a task function directly."""
    rails = Rails.build(plugins.settings, plugins)
    try:
        yield Kernel(rails, db=session, maintenance=maintenance)
    finally:
        await rails.close()


@contextmanager
def pool_connection_taken(client: Any) -> Iterator[None]:
    """Hold one of the app's pooled connections for the block (on the client's event loop):
    with a pool of one, every request in the block waits for ``db.pool_timeout_s``."""
    engine = rails(client.app).database.engine
    held: list[AsyncConnection] = []

    async def take() -> None:
        held.append(await engine.connect())

    async def give_back() -> None:
        await held.pop().close()

    client.blocking_portal.call(take)
    try:
        yield
    finally:
        client.blocking_portal.call(give_back)
