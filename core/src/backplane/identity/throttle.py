"""Login throttling: at most ``max_attempts`` hits per key in a window, then ``429``.

The algorithm is a **fixed window anchored at the first hit** of a key: the first hit opens a
window of ``window_s`` seconds; hits number 1..``max_attempts`` inside it are allowed, later
ones are refused with ``retry_after_s`` = the time left in the window; when it closes the
count starts again. Unlike clock-aligned windows there is no boundary at which an attacker
gets a double burst, and it needs one counter per key (one Redis key with a TTL), unlike a
sliding log. Refused hits are not counted and do not extend the window, so a locked-out user
is never locked out for longer than one window by someone who keeps guessing.

To count only *failed* attempts without a race, callers count an attempt before making it
(:meth:`Throttle.hit`) and give a successful one back (:meth:`Throttle.forget`), to the window
it was counted in only: counting failures afterwards would let any number of attempts in
flight pass the check, and a hit given back late must not free an attempt in the next window.

Keys are hashed before they are stored, so e-mail and IP addresses never sit in Redis or in
memory in clear, and key length cannot be used to grow memory.

Two implementations: :class:`MemoryThrottle` for one process (the embedded mode) and
:class:`RedisThrottle` shared by every process (set a Redis URL once there is more than one).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, runtime_checkable

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

_T = TypeVar("_T")
DEFAULT_MAX_KEYS: Final = 100_000
DEFAULT_REDIS_PREFIX: Final = "bp:throttle2:"
"""Keys are hashes since hits can be given back; versions before that kept plain counters
under ``bp:throttle:``, left there to expire (a shared prefix would have made the old scripts
and the new fail on each other's keys while processes of both run)."""


class ThrottleSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """At most ``max_attempts`` hits per key within ``window_s`` seconds."""

    max_attempts: int = 5
    window_s: int = 300

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.window_s < 1:
            raise ValueError("max_attempts and window_s must be at least 1")


class ThrottleDecision(msgspec.Struct, frozen=True):
    """Whether this hit may proceed; if not, seconds until it may (for ``Retry-After``). An
    allowed hit names its window (an opaque id), so that :meth:`Throttle.forget` gives it back
    to that window and no other."""

    allowed: bool
    retry_after_s: int = 0
    window: str = ""


class ThrottleUnavailableError(RuntimeError):
    """The shared store did not answer. Callers should answer 503, not skip throttling."""


@runtime_checkable
class Throttle(Protocol):
    """Counts hits per key; the protocol both implementations (and test doubles) satisfy."""

    settings: ThrottleSettings

    async def hit(self, key: str) -> ThrottleDecision:
        """Count one attempt for ``key`` if it is allowed, and say whether it is."""

    async def forget(self, key: str, decision: ThrottleDecision) -> None:
        """Give back the hit that answered ``decision`` (an attempt that turned out not to
        count, such as a successful login) if its window is still open; nothing for a
        refused hit."""

    async def reset(self, key: str) -> None:
        """Forget ``key``'s attempts (after a successful login)."""

    async def aclose(self) -> None:
        """Release connections (application shutdown)."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class MemoryThrottle:
    """In-process throttle with bounded memory.

    Entries live in a dict ordered by window start (a restarted window is re-inserted at the
    end), so expired entries are at the front and evicted as hits arrive. If ``max_keys`` live
    windows are held anyway (a flood of distinct keys), the oldest is dropped: a flood can
    shorten someone else's lock-out, never lengthen it. ``hit`` never awaits between reading
    and writing a counter, and a lock guards the dict across threads.
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
        # digest -> (window end, hits, window id)
        self._windows: dict[str, tuple[float, int, str]] = {}
        self._window_ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryThrottle({self.settings!r}, keys={len(self._windows)})"

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, key: str) -> ThrottleDecision:
        digest = _digest(key)
        with self._lock:
            now = self._clock()
            self._evict(now)
            entry = self._windows.get(digest)
            if entry is None or entry[0] <= now:
                self._windows.pop(digest, None)
                if len(self._windows) >= self.max_keys:
                    del self._windows[next(iter(self._windows))]
                window = str(next(self._window_ids))
                self._windows[digest] = (now + self.settings.window_s, 1, window)
                return ThrottleDecision(allowed=True, window=window)
            ends, hits, window = entry
            if hits >= self.settings.max_attempts:
                return ThrottleDecision(allowed=False, retry_after_s=max(1, math.ceil(ends - now)))
            self._windows[digest] = (ends, hits + 1, window)
            return ThrottleDecision(allowed=True, window=window)

    async def forget(self, key: str, decision: ThrottleDecision) -> None:
        if not decision.allowed:
            return
        digest = _digest(key)
        with self._lock:
            entry = self._windows.get(digest)
            if entry is None or entry[2] != decision.window or entry[0] <= self._clock():
                return
            ends, hits, window = entry
            if hits > 1:
                self._windows[digest] = (ends, hits - 1, window)
            else:
                del self._windows[digest]

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


# KEYS[1] is a hash: ``n`` hits counted in its window, ``w`` the window's id. ARGV: window ms,
# max_attempts, an id for a window this hit opens. One atomic script, so no hit sees a counter
# without a TTL (which would lock a key forever; PTTL < 0 heals one written by other means).
# Time is Redis's own. Answers {allowed 1/0, ms left, window id}.
_HIT_SCRIPT: Final = """
local window_ms = tonumber(ARGV[1])
local hits = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if hits < 1 then
  redis.call('HSET', KEYS[1], 'n', 1, 'w', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return {1, window_ms, ARGV[3]}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window_ms)
  ttl = window_ms
end
if hits >= tonumber(ARGV[2]) then
  return {0, ttl, ''}
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return {1, ttl, redis.call('HGET', KEYS[1], 'w')}
"""

# Give one hit back to window ARGV[1] of KEYS[1] if that window is still the key's; the TTL
# stays. A count that reaches 0 deletes the key (the next hit opens a window afresh).
_FORGET_SCRIPT: Final = """
if redis.call('HGET', KEYS[1], 'w') ~= ARGV[1] then
  return 0
end
if redis.call('HINCRBY', KEYS[1], 'n', -1) < 1 then
  redis.call('DEL', KEYS[1])
end
return 1
"""


class RedisThrottle:
    """Throttle shared by every process through Redis (Lua scripts, one hash with a TTL per
    key). A Redis error raises :class:`ThrottleUnavailableError`: failing open would let a
    brute force through whenever Redis is down."""

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
        self._hit_script = self._redis.register_script(_HIT_SCRIPT)
        self._forget_script = self._redis.register_script(_FORGET_SCRIPT)
        self._url = url

    def __repr__(self) -> str:
        from backplane.settings import redact_url

        return f"RedisThrottle({redact_url(self._url)!r}, {self.settings!r})"

    def _key(self, key: str) -> str:
        return self.prefix + _digest(key)

    async def hit(self, key: str) -> ThrottleDecision:
        window_ms = self.settings.window_s * 1000
        args: list[int | str] = [window_ms, self.settings.max_attempts, uuid.uuid4().hex]
        call = self._hit_script(keys=[self._key(key)], args=args)
        allowed, ttl_ms, window = await _answer(call)
        if int(allowed):
            # Bytes unless the client decodes responses.
            window = window.decode() if isinstance(window, bytes) else window
            return ThrottleDecision(allowed=True, window=window)
        return ThrottleDecision(allowed=False, retry_after_s=max(1, math.ceil(int(ttl_ms) / 1000)))

    async def forget(self, key: str, decision: ThrottleDecision) -> None:
        if decision.allowed:
            await _answer(self._forget_script(keys=[self._key(key)], args=[decision.window]))

    async def reset(self, key: str) -> None:
        await _answer(self._redis.delete(self._key(key)))

    async def aclose(self) -> None:
        await self._redis.aclose()


async def _answer(call: Awaitable[_T]) -> _T:
    from redis.exceptions import RedisError

    try:
        return await call
    except RedisError as exc:
        raise ThrottleUnavailableError(f"throttle store unavailable: {type(exc).__name__}") from exc


def make_throttle(redis_url: str | None, settings: ThrottleSettings | None = None) -> Throttle:
    """A :class:`RedisThrottle` when a Redis URL is configured, else a :class:`MemoryThrottle`.

    With several server processes and no Redis, each process counts on its own, so the
    effective limit is multiplied by the number of processes: configure Redis for those.
    """
    if redis_url:
        return RedisThrottle(redis_url, settings)
    return MemoryThrottle(settings)
