"""Login throttling: at most ``max_attempts`` hits per key in a window, then ``429``.

The algorithm is a **fixed window anchored at the first hit** of a key: the first hit opens a
window of ``window_s`` seconds; hits number 1..``max_attempts`` inside it are allowed, later
ones are refused with ``retry_after_s`` = the time left in the window; when it closes the
count starts again. Unlike clock-aligned windows there is no boundary at which an attacker
gets a double burst, and it needs one counter per key (one Redis key with a TTL), unlike a
sliding log. Refused hits do not extend the window, so a locked-out user is never locked out
for longer than one window by someone who keeps guessing.

Callers throttle several keys per login (the account and the client address, with separate
:class:`ThrottleSettings` if wanted) and reset the account key after a successful login.
Keys are hashed before they are stored, so e-mail and IP addresses never sit in Redis or in
memory in clear, and key length cannot be used to grow memory.

Two implementations: :class:`MemoryThrottle` for one process (the embedded mode) and
:class:`RedisThrottle` shared by every process (set a Redis URL once there is more than one).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import msgspec

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "MemoryThrottle",
    "RedisThrottle",
    "Throttle",
    "ThrottleDecision",
    "ThrottleSettings",
    "ThrottleUnavailableError",
    "make_throttle",
]

DEFAULT_MAX_KEYS: Final = 100_000
DEFAULT_REDIS_PREFIX: Final = "bp:throttle:"


class ThrottleSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """At most ``max_attempts`` hits per key within ``window_s`` seconds."""

    max_attempts: int = 5
    window_s: int = 300

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.window_s < 1:
            raise ValueError("max_attempts and window_s must be at least 1")


class ThrottleDecision(msgspec.Struct, frozen=True):
    """Whether this hit may proceed; if not, seconds until it may (for ``Retry-After``)."""

    allowed: bool
    retry_after_s: int = 0


class ThrottleUnavailableError(RuntimeError):
    """The shared store did not answer. Callers should answer 503, not skip throttling."""


@runtime_checkable
class Throttle(Protocol):
    """Counts hits per key; the protocol both implementations (and test doubles) satisfy."""

    settings: ThrottleSettings

    async def hit(self, key: str) -> ThrottleDecision:
        """Count one attempt for ``key`` and say whether it is allowed."""
        ...

    async def reset(self, key: str) -> None:
        """Forget ``key``'s attempts (after a successful login)."""
        ...

    async def aclose(self) -> None:
        """Release connections (application shutdown)."""
        ...


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class MemoryThrottle:
    """In-process throttle with bounded memory.

    Entries live in a dict ordered by window start (a restarted window is re-inserted at the
    end), so expired entries are always at the front and are evicted as hits arrive, in time
    proportional to what expired. If ``max_keys`` live windows are held anyway (a flood of
    distinct keys), the oldest window is dropped: memory stays bounded, and the cost is that a
    flood can shorten someone else's lock-out, never lengthen it.

    ``hit`` never awaits between reading and writing a counter, and a lock guards the dict for
    use from several threads, so concurrent hits are counted exactly.
    """

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.settings = settings or ThrottleSettings()
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # digest -> (window end, hits)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryThrottle({self.settings!r}, keys={len(self._windows)})"

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, key: str) -> ThrottleDecision:
        return self.hit_sync(key)

    def hit_sync(self, key: str) -> ThrottleDecision:
        """:meth:`hit` without the coroutine (the memory throttle never waits)."""
        digest = _digest(key)
        with self._lock:
            now = self._clock()
            self._evict(now)
            entry = self._windows.get(digest)
            if entry is None or entry[0] <= now:
                self._windows.pop(digest, None)
                if len(self._windows) >= self.max_keys:
                    del self._windows[next(iter(self._windows))]
                self._windows[digest] = (now + self.settings.window_s, 1)
                return ThrottleDecision(allowed=True)
            ends, hits = entry
            hits += 1
            self._windows[digest] = (ends, min(hits, self.settings.max_attempts + 1))
            if hits <= self.settings.max_attempts:
                return ThrottleDecision(allowed=True)
            return ThrottleDecision(allowed=False, retry_after_s=max(1, math.ceil(ends - now)))

    async def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(_digest(key), None)

    async def aclose(self) -> None:
        with self._lock:
            self._windows.clear()

    def _evict(self, now: float) -> None:
        windows = self._windows
        while windows:
            oldest = next(iter(windows))
            if windows[oldest][0] > now:
                break
            del windows[oldest]


# INCR and the first hit's PEXPIRE run atomically in one script, so no hit can see a counter
# without a TTL (which would lock a key forever). The PTTL < 0 branch also heals such a key if
# one was ever written by other means. Time is Redis's own, so app servers' clocks don't matter.
_HIT_SCRIPT: Final = """
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {hits, tonumber(ARGV[1])}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {hits, ttl}
"""


class RedisThrottle:
    """Throttle shared by every process through Redis (one counter key with a TTL per key).

    Uses redis-py's asyncio client and a Lua script (sent once, then run by SHA). A Redis
    error raises :class:`ThrottleUnavailableError`: failing open would let a brute force through
    whenever Redis is down.
    """

    def __init__(
        self,
        url: str,
        settings: ThrottleSettings | None = None,
        *,
        prefix: str = DEFAULT_REDIS_PREFIX,
        timeout_s: float = 2.0,
        client: Redis | None = None,
    ) -> None:
        from redis.asyncio import Redis

        self.settings = settings or ThrottleSettings()
        self.prefix = prefix
        self._redis: Redis = client or Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._redis.register_script(_HIT_SCRIPT)
        self._url = url

    def __repr__(self) -> str:
        from backplane.settings import redact_url

        return f"RedisThrottle({redact_url(self._url)!r}, {self.settings!r})"

    def _key(self, key: str) -> str:
        return self.prefix + _digest(key)

    async def hit(self, key: str) -> ThrottleDecision:
        from redis.exceptions import RedisError

        window_ms = self.settings.window_s * 1000
        try:
            hits, ttl_ms = await self._script(keys=[self._key(key)], args=[window_ms])
        except RedisError as exc:
            raise _unavailable(exc) from exc
        if int(hits) <= self.settings.max_attempts:
            return ThrottleDecision(allowed=True)
        return ThrottleDecision(allowed=False, retry_after_s=max(1, math.ceil(int(ttl_ms) / 1000)))

    async def reset(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.delete(self._key(key))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def _unavailable(exc: Exception) -> ThrottleUnavailableError:
    return ThrottleUnavailableError(f"throttle store unavailable: {type(exc).__name__}")


def make_throttle(redis_url: str | None, settings: ThrottleSettings | None = None) -> Throttle:
    """A :class:`RedisThrottle` when a Redis URL is configured, else a :class:`MemoryThrottle`.

    With several server processes and no Redis, each process counts on its own, so the
    effective limit is multiplied by the number of processes: configure Redis for those.
    """
    if redis_url:
        return RedisThrottle(redis_url, settings)
    return MemoryThrottle(settings)
