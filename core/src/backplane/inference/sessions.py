"""onnxruntime sessions: created with safe options, kept in an LRU cache bounded by memory.

Every session runs single-threaded (intra and inter op threads 1, spinning off): the thread pool
that calls ``session.run`` is what uses the cores, and a busy-spinning session would steal them
from requests waiting on other models. Sessions are built from bytes, never from a path, so a
model has no working directory to read from (uploads with external data are refused before they
get here). All sessions share one CPU arena registered with onnxruntime's environment and capped
at ``inference.arena_max_bytes``: a request that needs more fails instead of the process growing.

The cache charges each session its model file's size (weights dominate a session's memory) and
evicts the least recently used ones beyond ``inference.session_cache_bytes``; a request already
holding an evicted session finishes with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_arena_lock = threading.Lock()
_arena_registered: list[int] = []


def _register_arena(max_bytes: int) -> None:
    """Register the shared, capped CPU arena once per process (onnxruntime allows one)."""
    import onnxruntime as ort

    with _arena_lock:
        if _arena_registered:
            return
        memory = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        # arena_extend_strategy 1 = kSameAsRequested: grow by what is asked, not by doubling
        config = ort.OrtArenaCfg({"max_mem": max_bytes, "arena_extend_strategy": 1})
        ort.create_and_register_allocator(memory, config)
        _arena_registered.append(max_bytes)


def single_threaded(ort: Any) -> Any:
    """``SessionOptions`` for one thread, no spinning (the upload trial's sessions too)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(data: bytes, arena_max_bytes: int) -> Any:
    """An ``InferenceSession`` for ``data`` with the options above."""
    import onnxruntime as ort

    _register_arena(arena_max_bytes)
    options = single_threaded(ort)
    options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class SessionCache(Generic[T]):
    """Values (loaded models) by key, least recently used evicted beyond ``capacity`` bytes.

    ``get_or_load`` builds a missing value outside the lock (loading takes a while and must not
    stall other models); two threads racing on one key build it twice and keep the first.
    """

    def __init__(self, capacity_bytes: int, on_evict: Callable[[T], None] | None = None) -> None:
        self.capacity = capacity_bytes
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._on_evict = on_evict
        self.used = 0

    def get(self, key: str) -> T | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def get_or_load(self, key: str, load: Callable[[], tuple[T, int]]) -> T:
        """The cached value, or what ``load`` returns (with its cost in bytes), cached."""
        found = self.get(key)
        if found is not None:
            return found
        value, cost = load()
        evicted: list[T] = []
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                return entry[0]
            self._items[key] = (value, cost)
            self.used += cost
            # Keep at least the newest entry, even when it alone exceeds the capacity.
            while self.used > self.capacity and len(self._items) > 1:
                _, (old, old_cost) = self._items.popitem(last=False)
                self.used -= old_cost
                evicted.append(old)
        for old in evicted:
            if self._on_evict is not None:
                self._on_evict(old)
        return value

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def values(self) -> list[T]:
        with self._lock:
            return [value for value, _ in self._items.values()]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0
