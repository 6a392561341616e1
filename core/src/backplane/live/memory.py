"""Live events in this process's memory: the default, when no Redis is configured.

Channels keep at most ``max_events`` events for at most ``keep_s`` seconds; a channel whose
newest event is older than that is dropped whole (a sweep at most every ``keep_s``), so memory
stays bounded by the channels that are actually busy.
"""

from __future__ import annotations

import collections
import threading
import time

from backplane.live._backend import START, Entry, Listener, parse_id


class MemoryBackend:
    """The :class:`~backplane.live._backend.LiveBackend` of a single process."""

    def __init__(self, max_events: int, keep_s: float) -> None:
        self._max_events = max_events
        self._keep_ms = int(keep_s * 1000)
        self._lock = threading.Lock()
        self._events: dict[str, collections.deque[tuple[int, int, bytes]]] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._last: tuple[int, int] = (0, 0)
        self._swept_ms = _now_ms()

    async def publish(self, channel: str, payload: bytes) -> str:
        with self._lock:
            now = _now_ms()
            ms, seq = self._last
            self._last = (now, 0) if now > ms else (ms, seq + 1)
            ms, seq = self._last
            kept = self._events.get(channel)
            if kept is None:
                kept = self._events[channel] = collections.deque(maxlen=self._max_events)
            kept.append((ms, seq, payload))
            entry_id = f"{ms}-{seq}"
            for listener in self._listeners.get(channel, ()):
                listener.deliver((channel, entry_id, payload))
            if now - self._swept_ms > self._keep_ms:
                self._sweep(now)
        return entry_id

    def _sweep(self, now: int) -> None:
        self._swept_ms = now
        for channel in [c for c, kept in self._events.items() if kept[-1][0] < now - self._keep_ms]:
            del self._events[channel]

    async def head(self, channel: str) -> str:
        with self._lock:
            kept = self._events.get(channel)
            return f"{kept[-1][0]}-{kept[-1][1]}" if kept else START

    async def since(self, channel: str, after: str) -> tuple[list[Entry], bool]:
        cursor = parse_id(after)
        oldest = _now_ms() - self._keep_ms
        with self._lock:
            kept = list(self._events.get(channel, ()))
        fresh = [(ms, seq, payload) for ms, seq, payload in kept if ms >= oldest]
        found = after == START or any((ms, seq) == cursor for ms, seq, _ in fresh)
        entries = [(f"{ms}-{seq}", payload) for ms, seq, payload in fresh if (ms, seq) > cursor]
        return entries, found

    async def listen(self, channel: str, listener: Listener) -> None:
        with self._lock:
            self._listeners.setdefault(channel, set()).add(listener)

    def unlisten(self, channel: str, listener: Listener) -> None:
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[channel]

    async def close(self) -> None:
        with self._lock:
            self._listeners.clear()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
