"""Login throttling in memory and on a real Redis server (backplane.identity.throttle).

The Redis tests skip when no server answers at ``BACKPLANE_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``) and fail instead when ``BACKPLANE_TEST_REQUIRE_SERVICES``
names ``redis``, like the PostgreSQL suite (see ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import types
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from backplane.identity.throttle import (
    MemoryThrottle,
    RedisThrottle,
    Throttle,
    ThrottleDecision,
    ThrottleSettings,
    ThrottleUnavailableError,
    make_throttle,
)

REDIS_URL = os.environ.get("BACKPLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRED_SERVICES = {
    s.strip() for s in os.environ.get("BACKPLANE_TEST_REQUIRE_SERVICES", "").split(",") if s.strip()
}
LIMIT = ThrottleSettings(max_attempts=5, window_s=300)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory(clock: FakeClock) -> MemoryThrottle:
    return MemoryThrottle(LIMIT, clock=clock)


async def hits(throttle: Throttle, key: str, count: int) -> list[ThrottleDecision]:
    return [await throttle.hit(key) for _ in range(count)]


# -- in memory --------------------------------------------------------------------------------


async def test_memory_blocks_after_max_attempts_with_retry_after(
    memory: MemoryThrottle, clock: FakeClock
) -> None:
    assert all(d.allowed for d in await hits(memory, "alice", 5))
    clock.advance(100)
    refused = await memory.hit("alice")
    assert refused == ThrottleDecision(allowed=False, retry_after_s=200)
    clock.advance(199.5)
    assert await memory.hit("alice") == ThrottleDecision(allowed=False, retry_after_s=1)
    assert (await memory.hit("bob")).allowed  # other keys are independent


async def test_memory_unblocks_when_the_window_ends(
    memory: MemoryThrottle, clock: FakeClock
) -> None:
    await hits(memory, "alice", 6)
    clock.advance(299)
    assert not (await memory.hit("alice")).allowed
    clock.advance(1)
    decisions = await hits(memory, "alice", 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].retry_after_s == 300  # a fresh window, not extended by refusals


async def test_refused_hits_do_not_extend_the_window(
    memory: MemoryThrottle, clock: FakeClock
) -> None:
    await hits(memory, "alice", 5)
    for _ in range(29):
        clock.advance(10)
        assert not (await memory.hit("alice")).allowed
    clock.advance(10)
    assert (await memory.hit("alice")).allowed


async def test_memory_reset_forgets_the_key(memory: MemoryThrottle) -> None:
    await hits(memory, "alice", 6)
    await memory.reset("alice")
    assert all(d.allowed for d in await hits(memory, "alice", 5))
    await memory.reset("never-seen")


async def test_memory_evicts_expired_entries(memory: MemoryThrottle, clock: FakeClock) -> None:
    for i in range(100):
        await memory.hit(f"user-{i}")
    assert len(memory) == 100
    clock.advance(301)
    await memory.hit("late")
    assert len(memory) == 1


async def test_memory_caps_the_number_of_keys(clock: FakeClock) -> None:
    throttle = MemoryThrottle(LIMIT, clock=clock, max_keys=10)
    await hits(throttle, "victim", 6)
    for i in range(10):
        clock.advance(1)
        await throttle.hit(f"flood-{i}")
    assert len(throttle) == 10
    # The oldest window went first: the flood shortened the victim's lock-out, nothing else.
    assert (await throttle.hit("flood-9")).allowed
    assert (await throttle.hit("victim")).allowed


async def test_memory_keys_are_hashed(memory: MemoryThrottle) -> None:
    await memory.hit("alice@example.com")
    held = reachable_strings(memory)
    assert len([s for s in held if len(s) >= 32]) == 1  # the one key, as a digest
    assert not [s for s in held if "alice" in s]
    assert "alice" not in repr(memory)


def reachable_strings(root: object) -> list[str]:
    """Every string an object holds, however deep (not through classes, modules or code)."""
    seen: set[int] = set()
    found: list[str] = []
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, dict):  # the collector does not report a dict's string keys
            stack.extend([*obj.keys(), *obj.values()])
        else:
            stack.extend(gc.get_referents(obj))
    return found


async def test_memory_counts_concurrent_hits_exactly(memory: MemoryThrottle) -> None:
    decisions = await asyncio.gather(*(memory.hit("alice") for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 5


async def test_memory_forget_gives_back_one_hit(memory: MemoryThrottle) -> None:
    """A successful login's hit is given back: only failures use up the limit."""
    decisions = await hits(memory, "alice", 5)
    await memory.forget("alice", decisions[-1])
    assert [d.allowed for d in await hits(memory, "alice", 2)] == [True, False]


async def test_memory_refused_hits_are_not_counted(memory: MemoryThrottle) -> None:
    """Refusals in between do not eat into what a given-back hit frees."""
    decisions = await hits(memory, "alice", 8)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    await memory.forget("alice", decisions[0])
    await memory.forget("alice", decisions[1])
    assert [d.allowed for d in await hits(memory, "alice", 3)] == [True, True, False]


async def test_memory_forget_frees_nothing_in_a_later_window(
    memory: MemoryThrottle, clock: FakeClock
) -> None:
    """A hit counted in a closed window is not given back to the next one (that would let
    successes timed across the boundary buy extra guesses)."""
    old = await memory.hit("alice")
    clock.advance(300)
    await hits(memory, "alice", 5)
    await memory.forget("alice", old)
    assert not (await memory.hit("alice")).allowed


async def test_memory_forget_of_a_refused_or_unknown_hit_changes_nothing(
    memory: MemoryThrottle,
) -> None:
    decisions = await hits(memory, "alice", 6)
    await memory.forget("alice", decisions[-1])
    await memory.forget("bob", decisions[0])
    assert not (await memory.hit("alice")).allowed
    assert all(d.allowed for d in await hits(memory, "bob", 5))


async def test_memory_giving_back_every_hit_drops_the_key(memory: MemoryThrottle) -> None:
    decisions = await hits(memory, "alice", 2)
    for decision in decisions:
        await memory.forget("alice", decision)
    assert len(memory) == 0


async def attempts_at_once(throttle: Throttle, count: int) -> tuple[int, int]:
    """``count`` attempts at once, each counted before it is made and given back if it
    succeeds (every other one); answers (failed attempts let through, hits then left)."""

    async def attempt(succeeds: bool) -> bool:
        decision = await throttle.hit("alice")
        await asyncio.sleep(0)  # the attempt is in flight
        if decision.allowed and succeeds:
            await throttle.forget("alice", decision)
        return decision.allowed and not succeeds

    failures = sum(await asyncio.gather(*(attempt(i % 2 == 0) for i in range(count))))
    left = [d.allowed for d in await hits(throttle, "alice", LIMIT.max_attempts + 1)]
    return failures, left.count(True)


async def test_memory_lets_no_more_failures_through_than_the_limit_at_once(
    memory: MemoryThrottle,
) -> None:
    failures, left = await attempts_at_once(memory, 50)
    assert 1 <= failures <= LIMIT.max_attempts
    assert left == LIMIT.max_attempts - failures  # the successes used up nothing


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThrottleSettings(max_attempts=0)
    with pytest.raises(ValueError, match="at least 1"):
        ThrottleSettings(window_s=0)
    with pytest.raises(ValueError, match="max_keys"):
        MemoryThrottle(max_keys=0)


async def test_make_throttle_picks_the_implementation() -> None:
    memory = make_throttle(None, LIMIT)
    assert isinstance(memory, MemoryThrottle)
    assert memory.settings == LIMIT
    assert isinstance(make_throttle("", None), MemoryThrottle)
    shared = make_throttle("redis://user:secret@127.0.0.1:6379/15", LIMIT)
    try:
        assert isinstance(shared, RedisThrottle)
        assert isinstance(shared, Throttle)
        assert "secret" not in repr(shared)
    finally:
        await shared.aclose()


async def test_unreachable_redis_raises_rather_than_failing_open() -> None:
    throttle = RedisThrottle("redis://127.0.0.1:9/0", LIMIT, timeout_s=0.5)
    try:
        with pytest.raises(ThrottleUnavailableError):
            await throttle.hit("alice")
        with pytest.raises(ThrottleUnavailableError):
            await throttle.reset("alice")
        with pytest.raises(ThrottleUnavailableError):
            await throttle.forget("alice", ThrottleDecision(allowed=True, window="w"))
    finally:
        await throttle.aclose()


# -- Redis ------------------------------------------------------------------------------------


def _service_unavailable(reason: str) -> None:
    if "redis" in REQUIRED_SERVICES:
        pytest.fail(f"redis is required (BACKPLANE_TEST_REQUIRE_SERVICES) but {reason}")
    pytest.skip(f"redis not available: {reason}")


async def _ping(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The URL of a reachable Redis server (skip, or fail when required)."""
    try:
        asyncio.run(_ping(REDIS_URL))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        _service_unavailable(f"{REDIS_URL} did not answer: {exc}")
    return REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """The client the throttle under test is given: the test looks at the keys through it."""
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_throttle(redis_url: str, redis_client: Redis) -> AsyncIterator[RedisThrottle]:
    """A throttle under a key prefix of its own; its keys are deleted afterwards."""
    prefix = f"bp:test:{uuid.uuid4().hex}:"
    throttle = RedisThrottle(redis_url, LIMIT, prefix=prefix, client=redis_client)
    try:
        yield throttle
    finally:
        keys = await throttle_keys(redis_client, throttle)
        if keys:
            await redis_client.delete(*keys)


async def throttle_keys(client: Redis, throttle: RedisThrottle) -> list[bytes]:
    return [key async for key in client.scan_iter(match=throttle.prefix + "*")]


@pytest.mark.redis
async def test_redis_blocks_after_max_attempts_with_retry_after(
    redis_throttle: RedisThrottle,
) -> None:
    decisions = await hits(redis_throttle, "alice", 7)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert 295 <= decisions[-1].retry_after_s <= 300
    assert (await redis_throttle.hit("bob")).allowed


@pytest.mark.redis
async def test_redis_reset_forgets_the_key(redis_throttle: RedisThrottle) -> None:
    await hits(redis_throttle, "alice", 6)
    await redis_throttle.reset("alice")
    assert all(d.allowed for d in await hits(redis_throttle, "alice", 5))


@pytest.mark.redis
async def test_redis_window_expires(redis_url: str) -> None:
    """A one-second window, waited out for real (the only sleep in this module)."""
    prefix = f"bp:test:{uuid.uuid4().hex}:"
    throttle = RedisThrottle(redis_url, ThrottleSettings(max_attempts=2, window_s=1), prefix=prefix)
    try:
        assert [d.allowed for d in await hits(throttle, "alice", 3)] == [True, True, False]
        await asyncio.sleep(1.1)
        assert (await throttle.hit("alice")).allowed
    finally:
        await throttle.reset("alice")
        await throttle.aclose()


@pytest.mark.redis
async def test_redis_keys_are_hashed_and_expire(
    redis_client: Redis, redis_throttle: RedisThrottle
) -> None:
    await redis_throttle.hit("alice@example.com")
    keys = await throttle_keys(redis_client, redis_throttle)
    assert len(keys) == 1
    assert b"alice" not in keys[0]
    assert 0 < await redis_client.ttl(keys[0]) <= 300


@pytest.mark.redis
async def test_redis_heals_a_counter_without_ttl(
    redis_client: Redis, redis_throttle: RedisThrottle
) -> None:
    await redis_throttle.hit("alice")
    [key] = await throttle_keys(redis_client, redis_throttle)
    await redis_client.persist(key)
    await redis_throttle.hit("alice")
    assert 0 < await redis_client.ttl(key) <= 300


@pytest.mark.redis
async def test_redis_counts_concurrent_hits_exactly(redis_throttle: RedisThrottle) -> None:
    decisions = await asyncio.gather(*(redis_throttle.hit("alice") for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 5


@pytest.mark.redis
async def test_redis_is_shared_between_clients(
    redis_url: str, redis_throttle: RedisThrottle
) -> None:
    """Two processes (two clients) count against the same limit."""
    other = RedisThrottle(redis_url, LIMIT, prefix=redis_throttle.prefix)
    try:
        await hits(redis_throttle, "alice", 3)
        assert [d.allowed for d in await hits(other, "alice", 3)] == [True, True, False]
    finally:
        await other.aclose()


@pytest.mark.redis
async def test_redis_forget_gives_back_one_hit_and_refusals_are_not_counted(
    redis_throttle: RedisThrottle,
) -> None:
    decisions = await hits(redis_throttle, "alice", 8)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    await redis_throttle.forget("alice", decisions[0])
    await redis_throttle.forget("alice", decisions[-1])  # refused: nothing to give back
    assert [d.allowed for d in await hits(redis_throttle, "alice", 2)] == [True, False]


@pytest.mark.redis
async def test_redis_forget_keeps_the_window_and_drops_an_empty_key(
    redis_throttle: RedisThrottle,
) -> None:
    decisions = await hits(redis_throttle, "alice", 2)
    key = redis_throttle._key("alice")
    await redis_throttle.forget("alice", decisions[0])
    assert 0 < await redis_throttle._redis.ttl(key) <= 300
    await redis_throttle.forget("alice", decisions[1])
    assert not await redis_throttle._redis.exists(key)


@pytest.mark.redis
async def test_redis_forget_frees_nothing_in_a_later_window(redis_url: str) -> None:
    """A one-second window, waited out for real: a hit of the closed window given back does
    not free an attempt in the next one."""
    prefix = f"bp:test:{uuid.uuid4().hex}:"
    throttle = RedisThrottle(redis_url, ThrottleSettings(max_attempts=2, window_s=1), prefix=prefix)
    try:
        old = await throttle.hit("alice")
        await asyncio.sleep(1.1)
        assert [d.allowed for d in await hits(throttle, "alice", 2)] == [True, True]
        await throttle.forget("alice", old)
        assert not (await throttle.hit("alice")).allowed
    finally:
        await throttle.reset("alice")
        await throttle.aclose()


@pytest.mark.redis
async def test_redis_lets_no_more_failures_through_than_the_limit_at_once(
    redis_throttle: RedisThrottle,
) -> None:
    failures, left = await attempts_at_once(redis_throttle, 50)
    assert 1 <= failures <= LIMIT.max_attempts
    assert left == LIMIT.max_attempts - failures
