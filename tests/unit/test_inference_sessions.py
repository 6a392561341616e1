"""Sessions: the byte-bounded LRU cache, the safe session options, and the catalog's eviction
as configured through ``BACKPLANE_INFERENCE__SESSION_CACHE_BYTES``.

The cache bounds memory held by loaded models; if it evicted the wrong entry (or none), a busy
server would either thrash or grow without limit, so the order and the byte accounting matter.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backplane.inference.runtime import ModelCatalog
from backplane.inference.sessions import SessionCache, create_session
from backplane.loading import load_plugins
from backplane.models import example_models, resource
from tests.conftest import make_settings

ARENA = 256 << 20


class Loads:
    """``load`` callables that count their calls (a cache hit must not load)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str, cost: int) -> Callable[[], tuple[object, int]]:
        def load() -> tuple[object, int]:
            self.calls.append(key)
            return (f"value-{key}-{len(self.calls)}", cost)

        return load


@pytest.fixture
def evicted() -> list[object]:
    return []


@pytest.fixture
def cache(evicted: list[object]) -> SessionCache[object]:
    return SessionCache(10, on_evict=evicted.append)


# -- SessionCache ----------------------------------------------------------------------------


def test_get_or_load_loads_once_and_then_hits(cache: SessionCache[object]) -> None:
    loads = Loads()
    first = cache.get_or_load("a", loads("a", 3))
    again = cache.get_or_load("a", loads("a", 3))
    assert again is first
    assert loads.calls == ["a"]
    assert cache.get("a") is first
    assert cache.get("missing") is None
    assert cache.used == 3


def test_least_recently_loaded_is_evicted_beyond_capacity(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    loads = Loads()
    a = cache.get_or_load("a", loads("a", 4))
    b = cache.get_or_load("b", loads("b", 4))
    assert evicted == []
    assert cache.keys() == ["a", "b"]
    c = cache.get_or_load("c", loads("c", 4))  # 12 > 10: the oldest goes
    assert evicted == [a]
    assert cache.keys() == ["b", "c"]
    assert cache.values() == [b, c]
    assert cache.used == 8
    assert cache.get("a") is None
    # Loading it again is a fresh load that in turn pushes out the now oldest.
    a2 = cache.get_or_load("a", loads("a", 4))
    assert a2 is not a
    assert loads.calls == ["a", "b", "c", "a"]
    assert evicted == [a, b]
    assert cache.keys() == ["c", "a"]


def test_exactly_at_capacity_evicts_nothing(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    loads = Loads()
    cache.get_or_load("a", loads("a", 6))
    cache.get_or_load("b", loads("b", 4))
    assert cache.used == 10 == cache.capacity
    assert evicted == []
    assert cache.keys() == ["a", "b"]


def test_get_makes_an_entry_most_recently_used(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    loads = Loads()
    a = cache.get_or_load("a", loads("a", 4))
    b = cache.get_or_load("b", loads("b", 4))
    assert cache.get("a") is a  # a is now newer than b
    cache.get_or_load("c", loads("c", 4))
    assert evicted == [b]
    assert cache.keys() == ["a", "c"]


def test_a_hit_through_get_or_load_also_refreshes(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    loads = Loads()
    a = cache.get_or_load("a", loads("a", 4))
    b = cache.get_or_load("b", loads("b", 4))
    assert cache.get_or_load("a", loads("a", 4)) is a
    cache.get_or_load("c", loads("c", 4))
    assert evicted == [b]
    assert loads.calls == ["a", "b", "c"]


def test_an_entry_larger_than_capacity_is_kept_alone(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    """The newest entry stays even when it alone exceeds the capacity (it is in use)."""
    loads = Loads()
    a = cache.get_or_load("a", loads("a", 3))
    b = cache.get_or_load("b", loads("b", 3))
    huge = cache.get_or_load("huge", loads("huge", 50))
    assert evicted == [a, b]  # oldest first
    assert cache.keys() == ["huge"]
    assert cache.get("huge") is huge
    assert cache.used == 50
    small = cache.get_or_load("small", loads("small", 1))
    assert evicted == [a, b, huge]
    assert cache.keys() == ["small"]
    assert cache.values() == [small]
    assert cache.used == 1


def test_clear_empties_the_cache_and_its_accounting(cache: SessionCache[object]) -> None:
    loads = Loads()
    cache.get_or_load("a", loads("a", 4))
    cache.get_or_load("b", loads("b", 4))
    cache.clear()
    assert cache.keys() == []
    assert cache.values() == []
    assert cache.used == 0
    assert cache.get("a") is None
    cache.get_or_load("a", loads("a", 4))
    assert loads.calls == ["a", "b", "a"]
    assert cache.used == 4


def test_a_failed_load_caches_nothing(cache: SessionCache[object]) -> None:
    def broken() -> tuple[object, int]:
        raise OSError("model file vanished")

    with pytest.raises(OSError, match="vanished"):
        cache.get_or_load("a", broken)
    assert cache.keys() == []
    assert cache.used == 0
    loads = Loads()
    assert cache.get_or_load("a", loads("a", 2)) == "value-a-1"


def test_a_cache_without_on_evict_still_evicts() -> None:
    cache: SessionCache[object] = SessionCache(5)
    loads = Loads()
    cache.get_or_load("a", loads("a", 3))
    cache.get_or_load("b", loads("b", 3))
    assert cache.keys() == ["b"]


def test_two_threads_loading_one_key_agree_on_one_value(
    cache: SessionCache[object], evicted: list[object]
) -> None:
    """Both build (outside the lock), the first insert wins, and it is counted once."""
    barrier = threading.Barrier(2, timeout=10)
    built: list[object] = []
    lock = threading.Lock()

    def load() -> tuple[object, int]:
        value = object()
        with lock:
            built.append(value)
        barrier.wait()  # both threads are past the cache miss before either inserts
        return value, 4

    got: list[object] = []

    def worker() -> None:
        got.append(cache.get_or_load("k", load))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(built) == 2
    assert len(got) == 2
    assert got[0] is got[1]
    assert got[0] in built
    assert cache.keys() == ["k"]
    assert cache.get("k") is got[0]
    assert cache.used == 4
    assert evicted == []


# -- create_session --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray[Any, Any]]:
    with np.load(io.BytesIO(resource("expected.npz").read_bytes())) as npz:
        return {key: npz[key] for key in npz.files}


def test_sessions_run_single_threaded_without_spinning() -> None:
    """The pool calling ``run`` uses the cores; a session must not start threads of its own."""
    import onnxruntime as ort

    session = create_session(resource("wide_mlp.onnx").read_bytes(), ARENA)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.use_env_allocators") == "1"
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_every_example_model_runs_and_matches_scikit_learn(
    expected: dict[str, np.ndarray[Any, Any]],
) -> None:
    for model in example_models():
        session = create_session(resource(model.file).read_bytes(), ARENA)
        assert [i.name for i in session.get_inputs()] == [i.name for i in model.inputs]
        x = expected[f"{model.name}__input"]
        names = [o.name for o in model.outputs]
        results = session.run(names, {model.inputs[0].name: x})
        for name, result in zip(names, results, strict=True):
            want = expected[f"{model.name}__{name}"]
            assert result.shape == want.shape, (model.name, name)
            if want.dtype.kind == "f":
                np.testing.assert_allclose(result, want, rtol=1e-4, atol=1e-4)
            else:
                np.testing.assert_array_equal(result, want)


def test_a_second_arena_cap_does_not_break_session_creation() -> None:
    """onnxruntime allows one registered arena per process: later caps must be tolerated."""
    first = create_session(resource("iris_classifier.onnx").read_bytes(), ARENA)
    second = create_session(resource("iris_classifier.onnx").read_bytes(), 64 << 20)
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], np.float32)
    np.testing.assert_array_equal(
        first.run(["label"], {"float_input": x})[0], second.run(["label"], {"float_input": x})[0]
    )


# -- ModelCatalog eviction through settings -------------------------------------------------


@pytest.fixture
def catalog_with(data_dir: Path) -> Iterator[Callable[[int], ModelCatalog]]:
    """A catalog whose session cache holds ``capacity`` bytes; closed after the test."""
    made: list[ModelCatalog] = []

    def build(capacity: int) -> ModelCatalog:
        settings = make_settings(
            data_dir, {"BACKPLANE_INFERENCE__SESSION_CACHE_BYTES": str(capacity)}
        )
        catalog = ModelCatalog(load_plugins(settings))
        made.append(catalog)
        return catalog

    yield build
    for catalog in made:
        catalog.close()


def _size(name: str) -> int:
    return len(resource(f"{name}.onnx").read_bytes())


def test_catalog_keeps_only_the_sessions_that_fit(
    catalog_with: Callable[[int], ModelCatalog],
) -> None:
    iris_bytes, diabetes_bytes, wide_bytes = map(
        _size, ("iris_classifier", "diabetes_regressor", "wide_mlp")
    )
    capacity = iris_bytes + diabetes_bytes + 100  # both small ones, never the wide one
    assert wide_bytes > capacity
    catalog = catalog_with(capacity)
    assert catalog.settings.inference.session_cache_bytes == capacity
    iris = catalog.shipped_refs("iris_classifier")[0]
    diabetes = catalog.shipped_refs("diabetes_regressor")[0]
    wide = catalog.shipped_refs("wide_mlp")[0]

    first_iris = catalog.load(iris)
    catalog.load(diabetes)
    assert catalog.loaded_keys() == [iris.key, diabetes.key]
    assert catalog.load(iris) is first_iris  # a hit, now the most recent
    assert catalog.loaded_keys() == [diabetes.key, iris.key]

    loaded_wide = catalog.load(wide)  # alone over the capacity: everything else goes
    assert catalog.loaded_keys() == [wide.key]
    x = np.zeros((2, 256), np.float32)
    assert loaded_wide.session.run(["variable"], {"float_input": x})[0].shape == (2, 1)

    reloaded = catalog.load(iris)
    assert reloaded is not first_iris  # evicted before, built again
    assert catalog.loaded_keys() == [iris.key]


def test_a_roomy_catalog_keeps_every_model(catalog_with: Callable[[int], ModelCatalog]) -> None:
    catalog = catalog_with(64 << 20)
    refs = [catalog.shipped_refs(m.name)[0] for m in example_models()]
    loaded = [catalog.load(ref) for ref in refs]
    assert sorted(catalog.loaded_keys()) == sorted(ref.key for ref in refs)
    assert [catalog.load(ref) for ref in refs] == loaded
    for model, ref in zip(loaded, refs, strict=True):
        assert model.ref == ref
        assert model.cost == _size(ref.name)


async def test_eviction_unhooks_the_batcher_but_a_held_session_still_runs(
    catalog_with: Callable[[int], ModelCatalog],
) -> None:
    """A request already holding an evicted model finishes with it; the batcher is closed."""
    catalog = catalog_with(_size("iris_classifier") + 10)
    wide = catalog.load(catalog.shipped_refs("wide_mlp")[0])
    assert wide.batchable
    x = np.random.default_rng(2).normal(size=(3, 256)).astype(np.float32)
    first = await catalog.infer(uuid.uuid4(), wide, {"float_input": x}, None, 10.0)
    assert wide.batcher is not None  # the example models batch (max_batch_size 32)

    catalog.load(catalog.shipped_refs("iris_classifier")[0])
    assert catalog.loaded_keys() == [catalog.shipped_refs("iris_classifier")[0].key]
    assert wide.batcher is None
    again = wide.session.run(["variable"], {"float_input": x})[0]
    np.testing.assert_allclose(first["variable"], again, rtol=1e-5, atol=1e-6)
