"""A mail transport that keeps envelopes in this process's memory: the kernel's tests select it
(``mail.transport = "kitchen_sink_memory"``) to see that mail goes through the transport a
plugin registered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

DELIVERED: list[Any] = []
"""Every envelope handed over (tests inspect it)."""


class MemoryTransport:
    async def deliver(self, envelope: Any, committing: Callable[[], Awaitable[None]]) -> None:
        await committing()
        DELIVERED.append(envelope)


def open_memory_transport(settings: Any, password: str | None) -> MemoryTransport:
    return MemoryTransport()
