"""What a live-events backend does, and the listener it delivers to (shared by both backends).

A backend keeps, per channel (a tenant's stream, a user's stream), the recent events with
increasing ids (``<milliseconds>-<sequence>``, as Redis streams number their entries), so a
client that reconnects asks for what came after the last id it saw; and it delivers new
events to the listeners of this process. Listeners may live on any event loop: delivery goes
through the listener's loop (``call_soon_threadsafe``), since tasks publish from the task
runtime's own loop and thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Protocol

Entry = tuple[str, bytes]
"""``(id, payload)`` of one stored event."""

START = "0-0"
"""The id before every event: "the stream was empty"."""

ID_PATTERN = re.compile(r"^\d{1,15}-\d{1,12}\Z")


class LiveUnavailableError(RuntimeError):
    """The shared store of live events (Redis) did not answer."""


def parse_id(entry_id: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` as a comparable pair (:class:`ValueError` if malformed)."""
    if not ID_PATTERN.match(entry_id):
        raise ValueError(f"not an event id: {entry_id!r}")
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


class Listener:
    """One open stream's inbox: ``(channel, id, payload)`` items, or None when the hub closes.

    Bounded: a client too slow to take what is published is marked ``overflowed`` and its
    stream ends (it resumes from the history with ``Last-Event-ID``) rather than growing the
    server's memory without end."""

    def __init__(self, backlog: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, str, bytes] | None] = asyncio.Queue(backlog + 1)
        self.overflowed = False

    def deliver(self, item: tuple[str, str, bytes] | None) -> None:
        """Hand ``item`` over from any thread (nothing if the listener's loop has ended)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody reads this inbox
            self.loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: tuple[str, str, bytes] | None) -> None:
        if item is not None and self.queue.qsize() >= self.queue.maxsize - 1:
            self.overflowed = True
            item = None  # the last slot is kept for this: the stream ends
        if item is None and self.queue.full():
            return
        self.queue.put_nowait(item)


class LiveBackend(Protocol):
    """Where events are stored for a while and fanned out to this process's listeners."""

    async def publish(self, channel: str, payload: bytes) -> str:
        """Store ``payload`` on ``channel`` and deliver it to listeners; its new id."""

    async def head(self, channel: str) -> str:
        """The id of the channel's newest stored event (:data:`START` if none)."""

    async def since(self, channel: str, after: str) -> tuple[list[Entry], bool]:
        """The stored events after ``after``, oldest first, and whether that is all that was
        published after it (False: ``after`` fell out of the kept window, some may be lost)."""

    async def listen(self, channel: str, listener: Listener) -> None:
        """Deliver the channel's events published from now on to ``listener``."""

    def unlisten(self, channel: str, listener: Listener) -> None:
        """Stop delivering to ``listener`` (a no-op if it was not listening)."""

    async def close(self) -> None:
        """Release connections and threads."""
