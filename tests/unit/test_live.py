"""Live events without a server: what ``kernel.live.publish`` refuses, the stream position,
and the in-memory backend's kept window."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from backplane.live import Cursor, LiveHub, TenantLive
from backplane.live._backend import START, Listener, parse_id
from backplane.live.hub import tenant_channel
from backplane.live.memory import MemoryBackend
from tests.conftest import make_settings


def hub(**live: object) -> LiveHub:
    env = {f"BACKPLANE_LIVE__{k.upper()}": str(v) for k, v in live.items()}
    return LiveHub(make_settings(Path("/nonexistent"), env))


@pytest.mark.parametrize(
    ("plugin", "event_type", "data", "problem"),
    [
        ("notes", "other.thing", {}, "must start with the plugin name 'notes'"),
        ("notes", "notes", {}, "must look like"),
        ("core", "live.gap", {}, "are the stream's own"),
        ("notes", "notes.done", {"when": object()}, "JSON-serialisable"),
        ("notes", "notes.done", ["not", "a", "dict"], "must be a dict"),
        ("notes", "notes.done", {"blob": "x" * 70_000}, "live.max_event_bytes allows 65536"),
    ],
)
def test_publish_refuses_bad_types_and_data(
    plugin: str, event_type: str, data: object, problem: str
) -> None:
    live = TenantLive(hub(), plugin, uuid.uuid4())
    with pytest.raises(ValueError, match=problem):
        asyncio.run(live.publish(event_type, data))  # type: ignore[arg-type]


def test_the_position_names_both_streams() -> None:
    cursor = Cursor.parse("1700000000000-3_0-0")
    assert (cursor.tenant, cursor.user) == ("1700000000000-3", START)
    assert str(cursor) == "1700000000000-3_0-0"
    for bad in ("", "1-2", "a-b_0-0", "1-2_3-4_5-6", "1_2"):
        with pytest.raises(ValueError, match="Last-Event-ID"):
            Cursor.parse(bad)


def test_the_memory_backend_keeps_a_bounded_window() -> None:
    async def scenario() -> None:
        backend = MemoryBackend(max_events=3, keep_s=0.3)
        listener = Listener(10)
        await backend.listen("c", listener)
        ids = [await backend.publish("c", str(n).encode()) for n in range(5)]
        assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids)
        assert len(set(ids)) == 5  # distinct, even within one millisecond
        await asyncio.sleep(0)  # deliveries run on the listener's loop
        assert [listener.queue.get_nowait() for _ in range(5)] == [
            ("c", entry_id, str(n).encode()) for n, entry_id in enumerate(ids)
        ]
        assert await backend.head("c") == ids[-1]
        entries, whole = await backend.since("c", ids[0])  # fell out: 3 events are kept
        assert not whole
        assert [e for e, _ in entries] == ids[2:]
        entries, whole = await backend.since("c", ids[3])
        assert (whole, [e for e, _ in entries]) == (True, ids[4:])
        assert await backend.since("c", START) == (
            [(i, str(n + 2).encode()) for n, i in enumerate(ids[2:])],
            True,
        )
        backend.unlisten("c", listener)
        await asyncio.sleep(0.35)
        assert await backend.since("c", ids[3]) == ([], False)  # too old
        await backend.publish("other", b"x")  # sweeps channels idle for longer than keep_s
        assert await backend.head("c") == START

    asyncio.run(scenario())


def test_a_slow_listener_is_cut_off_instead_of_growing() -> None:
    async def scenario() -> None:
        backend = MemoryBackend(max_events=100, keep_s=60)
        listener = Listener(backlog=2)
        await backend.listen(tenant_channel(uuid.uuid4()), listener)
        channel = next(iter(backend._listeners))
        for n in range(5):
            await backend.publish(channel, str(n).encode())
        await asyncio.sleep(0)  # deliveries run on the loop
        items = [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]
        assert listener.overflowed
        assert items[-1] is None  # the stream ends; the client resumes from the history
        assert len(items) == 3

    asyncio.run(scenario())
