"""Live events through Redis streams, shared by every server and worker process.

Each channel is a stream (``backplane:live:<channel>``) trimmed to about ``max_events``
entries and ``keep_s`` seconds (``XADD MAXLEN ~``, ``XTRIM MINID ~``) and expiring when idle
(``PEXPIRE``); its entry ids are the SSE event ids, so resumption is ``XRANGE`` after the id
the client last saw. One reader thread per process (``XREAD BLOCK`` on the channels that have
listeners here, each from the newest id it has handed over) fans events out to this process's
streams: a process holds one blocked connection, not one per client.

Litestar's channels plugin was tried first: its Redis stream backend replays a stream's whole
history as new events to the first subscriber of a process (it reads new channels from id 0),
polls Redis every millisecond, and returns history without entry ids; its memory backend drops
a channel's history when its last subscriber leaves (a reconnecting client finds nothing).
Resumption needs the ids, so the kernel speaks to Redis streams with redis-py directly.

The client is redis-py's synchronous one, called in threads: events are published from the
server's loop and from the task runtime's own loop, and a synchronous client (thread-safe,
pooled) serves both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from backplane.live._backend import START, Entry, Listener, LiveUnavailableError, parse_id

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "backplane:live:"
BLOCK_MS = 500
"""How long the reader waits on Redis per call: a new channel's first events (already safe
in the stream, read from its head) reach this process's reader at most this late."""


class RedisBackend:
    """The :class:`~backplane.live._backend.LiveBackend` of several processes."""

    def __init__(self, url: str, max_events: int, keep_s: float) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self._reader_client = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=BLOCK_MS / 1000 + 10
        )
        self._max_events = max_events
        self._keep_ms = int(keep_s * 1000)
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Listener]] = {}
        self._read_from: dict[str, str] = {}
        """Stream key -> the id after which the reader reads it next."""
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._reader: threading.Thread | None = None

    # -- publishing and history ------------------------------------------------------------
    async def publish(self, channel: str, payload: bytes) -> str:
        return await _answered(self._publish, KEY_PREFIX + channel, payload)

    def _publish(self, key: str, payload: bytes) -> str:
        oldest = max(0, _now_ms() - self._keep_ms)
        with self._client.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"p": payload}, maxlen=self._max_events, approximate=True)
            pipe.xtrim(key, minid=f"{oldest}-0", approximate=True)
            pipe.pexpire(key, self._keep_ms)
            added, _, _ = pipe.execute()
        return _text(added)

    async def head(self, channel: str) -> str:
        return await _answered(self._head, KEY_PREFIX + channel)

    def _head(self, key: str) -> str:
        newest: Any = self._client.xrevrange(key, count=1)
        return _text(newest[0][0]) if newest else START

    async def since(self, channel: str, after: str) -> tuple[list[Entry], bool]:
        parse_id(after)
        return await _answered(self._since, KEY_PREFIX + channel, after)

    def _since(self, key: str, after: str) -> tuple[list[Entry], bool]:
        oldest = (_now_ms() - self._keep_ms, 0)
        found = after == START
        if not found:
            found = bool(self._client.xrange(key, min=after, max=after, count=1))
            found = found and parse_id(after) >= oldest
        stored: Any = self._client.xrange(key, min=f"({after}")
        entries = [
            (_text(entry_id), bytes(fields[b"p"]))
            for entry_id, fields in stored
            if parse_id(_text(entry_id)) >= oldest
        ]
        return entries, found

    # -- fan-out to this process's listeners -------------------------------------------------
    async def listen(self, channel: str, listener: Listener) -> None:
        key = KEY_PREFIX + channel
        with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            first = not listeners
            listeners.add(listener)
        if not first:
            return
        try:
            head = await _answered(self._head, key)
        except LiveUnavailableError:
            self.unlisten(channel, listener)
            raise
        with self._lock:
            if self._listeners.get(channel) and key not in self._read_from:
                self._read_from[key] = head
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read, name="backplane-live-reader", daemon=True
                )
                self._reader.start()
        self._wake.set()

    def unlisten(self, channel: str, listener: Listener) -> None:
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[channel]
                self._read_from.pop(KEY_PREFIX + channel, None)

    def _read(self) -> None:
        """The reader thread: hand every new entry of a listened channel to its listeners."""
        while not self._stopped.is_set():
            with self._lock:
                streams: Any = dict(self._read_from)
            if not streams:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                answer: Any = self._reader_client.xread(streams, block=BLOCK_MS, count=500)
            except redis.RedisError as exc:
                log.warning("live events: reading from Redis failed (%s); retrying", exc)
                self._stopped.wait(1.0)
                continue
            for raw_key, entries in answer or ():
                self._hand_over(_text(raw_key), entries)

    def _hand_over(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        channel = key.removeprefix(KEY_PREFIX)
        with self._lock:
            if key not in self._read_from:
                return  # nobody listens any more
            self._read_from[key] = _text(entries[-1][0])
            listeners = list(self._listeners.get(channel, ()))
        for entry_id, fields in entries:
            for listener in listeners:
                listener.deliver((channel, _text(entry_id), fields[b"p"]))

    async def close(self) -> None:
        self._stopped.set()
        self._wake.set()
        reader, self._reader = self._reader, None
        if reader is not None:
            await asyncio.to_thread(reader.join, BLOCK_MS / 1000 + 1)
        self._client.close()
        self._reader_client.close()


async def _answered(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in a thread; Redis failing is :class:`LiveUnavailableError`."""
    try:
        return await asyncio.to_thread(call, *args)
    except redis.RedisError as exc:
        raise LiveUnavailableError(f"live events: Redis did not answer ({exc})") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
