"""RefreshAheadCache: callers under load never wait for a re-read, concurrent misses share one
read, nothing is served past its bound, and ``forget`` beats a read in flight."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from backplane.caching import RefreshAheadCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A loader whose reads can be held open and made to fail."""

    def __init__(self) -> None:
        self.value = "v1"
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.calls = 0

    async def load(self, key: str) -> str | None:
        self.calls += 1
        value = self.value
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return None if value == "missing" else f"{key}={value}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_read(clock: Clock) -> None:
    source = Source()
    source.gate.clear()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    waiting = [asyncio.ensure_future(cache.get("k")) for _ in range(20)]
    await settle()
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["k=v1"] * 20
    assert source.calls == 1


async def test_a_value_is_refreshed_in_the_background_before_it_expires(clock: Clock) -> None:
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    assert await cache.get("k") == "k=v1"
    source.value = "v2"
    clock.now += 0.9  # younger than half the bound: served, nothing read
    assert await cache.get("k") == "k=v1"
    assert source.calls == 1

    source.gate.clear()
    clock.now += 0.6  # 1.5 s old: still served at once, one read starts behind it
    assert await asyncio.wait_for(cache.get("k"), 0.1) == "k=v1"
    assert await asyncio.wait_for(cache.get("k"), 0.1) == "k=v1"
    await settle()
    assert source.calls == 2  # one refresh, however many callers saw the old value
    source.gate.set()
    await settle()
    assert await cache.get("k") == "k=v2"


async def test_past_its_bound_a_value_is_never_served(clock: Clock) -> None:
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    await cache.get("k")
    source.value = "v2"
    source.gate.clear()
    clock.now += 2.5
    pending = asyncio.ensure_future(cache.get("k"))
    await settle()
    assert not pending.done()  # waits for the read instead of serving the old value
    source.gate.set()
    assert await pending == "k=v2"


async def test_forget_detaches_a_read_already_in_flight(clock: Clock) -> None:
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    source.gate.clear()
    first = asyncio.ensure_future(cache.get("k"))
    await settle()
    cache.forget("k")  # e.g. the key was revoked while the read was running
    source.value = "v2"
    later = asyncio.ensure_future(cache.get("k"))  # does not join the old read
    await settle()
    source.gate.set()
    assert await first == "k=v1"  # the caller that started it gets its answer ...
    assert await later == "k=v2"
    assert source.calls == 2


async def test_after_forget_nothing_is_kept_for_a_while(clock: Clock) -> None:
    """A read that raced the change's commit (started after forget, saw the old row) is
    returned to its callers but not kept; once the bound has passed, caching resumes."""
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    await cache.get("k")
    cache.forget("k")
    assert await cache.get("k") == "k=v1"  # the change is not committed yet
    source.value = "v2"  # committed
    assert await cache.get("k") == "k=v2"
    assert source.calls == 3
    clock.now += 2.1
    assert await cache.get("k") == "k=v2"
    assert await cache.get("k") == "k=v2"
    assert source.calls == 4  # cached again


async def test_none_can_be_left_out_of_the_cache(clock: Clock) -> None:
    source = Source()
    source.value = "missing"
    remembering = RefreshAheadCache(source.load, 2.0, clock=clock)
    forgetting = RefreshAheadCache(source.load, 2.0, remember=lambda v: v is not None, clock=clock)
    for cache in (remembering, forgetting):
        assert await cache.get("k") is None
        assert await cache.get("k") is None
    assert remembering.reads == 1
    assert forgetting.reads == 2  # invented keys do not fill the cache


async def test_a_failed_refresh_keeps_the_value_until_its_bound_then_raises(
    clock: Clock,
) -> None:
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    await cache.get("k")
    source.fail = ConnectionError("database down")
    clock.now += 1.5
    assert await cache.get("k") == "k=v1"
    await settle()  # the background refresh failed (logged)
    assert await cache.get("k") == "k=v1"
    clock.now += 1.0
    with pytest.raises(ConnectionError, match="database down"):
        await cache.get("k")


REQUEST = contextvars.ContextVar[str]("request", default="none")


async def test_reads_run_outside_the_context_of_the_caller_that_started_them(
    clock: Clock,
) -> None:
    seen: list[str] = []

    async def load(key: str) -> str:
        seen.append(REQUEST.get())
        return key

    cache = RefreshAheadCache(load, 2.0, clock=clock)
    REQUEST.set("request 1")
    await cache.get("k")
    clock.now += 1.5
    await cache.get("k")
    await settle()
    assert seen == ["none", "none"]  # neither the waited read nor the background one


async def test_a_waiter_never_joins_a_read_older_than_the_bound(clock: Clock) -> None:
    source = Source()
    cache = RefreshAheadCache(source.load, 2.0, clock=clock)
    source.gate.clear()
    slow = asyncio.ensure_future(cache.get("k"))
    await settle()
    clock.now += 2.5  # the first read is still running, and too old to answer a new caller
    fresh = asyncio.ensure_future(cache.get("k"))
    await settle()
    assert source.calls == 2
    source.gate.set()
    assert (await slow, await fresh) == ("k=v1", "k=v1")
