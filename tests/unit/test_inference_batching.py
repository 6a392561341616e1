"""DynamicBatcher: concurrent requests share ``session.run`` calls yet each gets exactly its own
rows back, in order; what must not be batched (other shapes, models without a row per row) is
not; failures and timeouts reach only the requests they concern.

The real example sessions are used where the arithmetic matters (a mix-up of rows shows as a
wrong output); a fake ``run`` callable, tagging each request's rows with its id in column 0,
where the test needs to see exactly which requests shared a run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from backplane.inference.batching import DynamicBatcher, Feed, Timing
from backplane.inference.sessions import create_session
from backplane.models import resource

ARENA = 256 << 20
WAIT = 10.0  # generous upper bound so a hang fails the test instead of stalling the suite


class Recorder:
    """Wraps a run callable (called from pool threads): the feeds of every call, in order."""

    def __init__(self, run: Callable[[list[str], Feed], list[Any]]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self.feeds: list[Feed] = []

    def __call__(self, names: list[str], feed: Feed) -> list[Any]:
        with self._lock:
            self.feeds.append({k: v.copy() for k, v in feed.items()})
        return self._run(names, feed)

    @property
    def rows(self) -> list[int]:
        """Rows per call."""
        return [next(iter(f.values())).shape[0] for f in self.feeds]

    def ids(self, name: str = "x") -> list[set[int]]:
        """Per call, the request ids found in column 0 of input ``name``."""
        return [{int(v) for v in f[name][:, 0]} for f in self.feeds]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(2, thread_name_prefix="test-batching")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def wide() -> Any:
    return create_session(resource("wide_mlp.onnx").read_bytes(), ARENA)


@pytest.fixture(scope="module")
def iris() -> Any:
    return create_session(resource("iris_classifier.onnx").read_bytes(), ARENA)


def _batcher(
    run: Callable[[list[str], Feed], list[Any]],
    outputs: list[str],
    pool: ThreadPoolExecutor,
    *,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 0,
    concurrency: int = 2,
) -> DynamicBatcher:
    return DynamicBatcher(
        run,
        outputs,
        pool,
        max_batch_size=max_batch_size,
        max_queue_delay_us=max_queue_delay_us,
        concurrency=concurrency,
    )


def _tagged(request_id: int, rows: int, width: int = 4, dtype: Any = np.float32) -> Feed:
    """``rows`` rows whose column 0 is ``request_id`` (the fake runs below keep it visible)."""
    x = np.full((rows, width), float(request_id), dtype=dtype)
    x[:, 1:] = np.arange(rows * (width - 1)).reshape(rows, width - 1) + 1000 * request_id
    return {"x": x}


def _doubled(names: list[str], feed: Feed) -> list[Any]:
    """A fake model with a batch axis: y = 2x, row for row."""
    return [feed["x"] * 2]


async def test_concurrent_requests_get_their_own_rows_in_fewer_runs(
    wide: Any, pool: ThreadPoolExecutor
) -> None:
    """The point of batching: many requests, fewer runs, and no row ends up elsewhere."""
    recorder = Recorder(wide.run)
    batcher = _batcher(recorder, ["variable"], pool, max_batch_size=32)
    rng = np.random.default_rng(7)
    requests = [
        rng.normal(size=(int(rng.integers(1, 4)), 256)).astype(np.float32) for _ in range(64)
    ]
    alone = [wide.run(["variable"], {"float_input": x})[0] for x in requests]
    # Precondition: every row's output differs, so a row answered to the wrong request shows.
    flat = np.sort(np.concatenate(alone).ravel())
    assert np.diff(flat).min() > 5e-5  # well above the tolerance below

    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit({"float_input": x}) for x in requests)), WAIT
    )

    assert len(results) == len(requests)
    for x, expected, (outputs, timing) in zip(requests, alone, results, strict=True):
        assert set(outputs) == {"variable"}
        assert outputs["variable"].shape == (x.shape[0], 1)
        np.testing.assert_allclose(outputs["variable"], expected, rtol=1e-5, atol=1e-6)
        assert isinstance(timing, Timing)
        assert timing.batch_rows >= x.shape[0]
    assert 0 < len(recorder.feeds) < len(requests)
    assert sum(recorder.rows) == sum(x.shape[0] for x in requests)  # each row ran exactly once
    assert max(recorder.rows) <= 32
    assert any(timing.batch_requests > 1 for _, timing in results)
    # The rows that ran are exactly the rows submitted (none lost, none duplicated).
    ran = sorted(row.tobytes() for f in recorder.feeds for row in f["float_input"])
    assert ran == sorted(row.tobytes() for x in requests for row in x)
    assert batcher.disabled_reason is None


async def test_every_output_is_split_back_per_request(iris: Any, pool: ThreadPoolExecutor) -> None:
    """A model with two outputs of different ranks (label [N], probabilities [N, 3])."""
    names = [o.name for o in iris.get_outputs()]
    assert names == ["label", "probabilities"]
    batcher = _batcher(iris.run, names, pool)
    rng = np.random.default_rng(3)
    requests = [
        (rng.uniform(0, 8, size=(rows, 4))).astype(np.float32) for rows in (1, 3, 2, 1, 2, 3)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit({"float_input": x}) for x in requests)), WAIT
    )
    for x, (outputs, _timing) in zip(requests, results, strict=True):
        label, probabilities = iris.run(names, {"float_input": x})
        np.testing.assert_array_equal(outputs["label"], label)
        np.testing.assert_allclose(outputs["probabilities"], probabilities, rtol=1e-5, atol=1e-6)
        assert outputs["label"].shape == (x.shape[0],)
        assert outputs["probabilities"].shape == (x.shape[0], 3)
    assert results[0][1].batch_requests > 1


async def test_max_batch_size_bounds_every_run(pool: ThreadPoolExecutor) -> None:
    """No run gets more rows than max_batch_size, except one request that alone is larger."""
    recorder = Recorder(_doubled)
    batcher = _batcher(recorder, ["y"], pool, max_batch_size=5, concurrency=1)
    sizes = [1, 3, 2, 2, 1, 3, 3, 1, 2, 12, 1, 2, 3, 1]
    feeds = [_tagged(i, rows) for i, rows in enumerate(sizes)]
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(f) for f in feeds)), WAIT)

    for feed, (outputs, _timing) in zip(feeds, results, strict=True):
        np.testing.assert_array_equal(outputs["y"], feed["x"] * 2)
    big = sizes.index(12)
    for ids, rows in zip(recorder.ids(), recorder.rows, strict=True):
        if big in ids:
            assert ids == {big}
            assert rows == 12
        else:
            assert rows <= 5
    assert results[big][1].batch_requests == 1
    assert len(recorder.feeds) < len(sizes)
    # Each run's rows are whole requests, concatenated in the order they were submitted.
    for feed in recorder.feeds:
        order = [int(v) for v in feed["x"][:, 0]]
        assert order == sorted(order)
        for i in set(order):
            assert order.count(i) == sizes[i]


async def test_different_trailing_shapes_or_dtypes_never_share_a_run(
    pool: ThreadPoolExecutor,
) -> None:
    """np.concatenate would silently upcast float32 with float64: the batcher must not try."""
    recorder = Recorder(_doubled)
    batcher = _batcher(recorder, ["y"], pool, max_batch_size=64)
    kinds = [(4, np.float32), (5, np.float32), (4, np.float64), (4, np.int64)]
    feeds, kind_of = [], {}
    for i in range(24):
        width, dtype = kinds[i % len(kinds)]
        feeds.append(_tagged(i, 1 + i % 3, width, dtype))
        kind_of[i] = (width, np.dtype(dtype))
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(f) for f in feeds)), WAIT)

    for feed, (outputs, _) in zip(feeds, results, strict=True):
        assert outputs["y"].dtype == feed["x"].dtype
        np.testing.assert_array_equal(outputs["y"], feed["x"] * 2)
    for ids in recorder.ids():
        assert len({kind_of[i] for i in ids}) == 1, ids
    for feed in recorder.feeds:
        assert len({kind_of[int(v)] for v in feed["x"][:, 0]}) == 1
    assert len(recorder.feeds) < len(feeds)  # still batched within each kind


def _scale_model() -> bytes:
    """y = 3x with x FP32 [N, K], both dimensions dynamic."""
    three = helper.make_tensor("three", TensorProto.FLOAT, [], [3.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "K"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "K"])],
        initializer=[three],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


async def test_real_model_with_a_dynamic_width_gets_per_width_runs(
    pool: ThreadPoolExecutor,
) -> None:
    """Widths 2, 3 and 7 interleaved: joined into one run they could not even be concatenated."""
    session = create_session(_scale_model(), ARENA)
    recorder = Recorder(session.run)
    batcher = _batcher(recorder, ["y"], pool)
    rng = np.random.default_rng(11)
    feeds = [
        {"x": rng.normal(size=(1 + i % 2, (2, 3, 7)[i % 3])).astype(np.float32)} for i in range(18)
    ]
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(f) for f in feeds)), WAIT)
    for feed, (outputs, _) in zip(feeds, results, strict=True):
        np.testing.assert_allclose(outputs["y"], feed["x"] * 3, rtol=1e-6)
    assert {f["x"].shape[1] for f in recorder.feeds} == {2, 3, 7}
    assert len(recorder.feeds) < len(feeds)


async def test_outputs_without_a_row_per_input_row_disable_batching(
    pool: ThreadPoolExecutor,
) -> None:
    """A model reducing the batch to a scalar: batching would hand every request the same
    number; instead each request is run alone and gets its own answer."""

    def total(names: list[str], feed: Feed) -> list[Any]:
        return [np.array(feed["x"].sum(), dtype=np.float64)]

    recorder = Recorder(total)
    batcher = _batcher(recorder, ["sum"], pool)
    feeds = [_tagged(i, 1 + i % 3) for i in range(8)]
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(f) for f in feeds)), WAIT)

    assert batcher.disabled_reason is not None
    for feed, (outputs, _) in zip(feeds, results, strict=True):
        assert outputs["sum"].shape == ()
        assert float(outputs["sum"]) == float(feed["x"].sum())
    # The batched attempt happened, then every request ran on its own.
    assert len(recorder.ids()[0]) > 1
    assert {frozenset(ids) for ids in recorder.ids()[1:]} >= {frozenset({i}) for i in range(8)}

    later = _tagged(99, 2)
    outputs, _ = await asyncio.wait_for(batcher.submit(later), WAIT)
    assert float(outputs["sum"]) == float(later["x"].sum())


async def test_an_exception_from_run_reaches_every_waiting_request(
    pool: ThreadPoolExecutor,
) -> None:
    """Every request in the failed run gets the error; the run slot is given back."""
    failing = threading.Event()
    failing.set()

    def run(names: list[str], feed: Feed) -> list[Any]:
        if failing.is_set():
            raise ValueError("kernel exploded")
        return [feed["x"] * 2]

    recorder = Recorder(run)
    batcher = _batcher(recorder, ["y"], pool, concurrency=1)
    feeds = [_tagged(i, 1 + i % 2) for i in range(10)]
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(f) for f in feeds), return_exceptions=True), WAIT
    )
    assert all(isinstance(r, ValueError) and "kernel exploded" in str(r) for r in results)
    assert set().union(*recorder.ids()) == set(range(10))  # each request was in a failed run

    failing.clear()
    feed = _tagged(42, 3)
    outputs, _ = await asyncio.wait_for(batcher.submit(feed), WAIT)  # hangs if the slot leaked
    np.testing.assert_array_equal(outputs["y"], feed["x"] * 2)


async def _started(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT), "the first run never started"


async def test_a_timed_out_request_does_not_break_the_others(pool: ThreadPoolExecutor) -> None:
    """A request given up while the only run slot is busy is dropped; its rows never run."""
    started, gate = threading.Event(), threading.Event()

    def run(names: list[str], feed: Feed) -> list[Any]:
        if 0 in feed["x"][:, 0]:
            started.set()
            gate.wait(WAIT)
        return [feed["x"] * 2]

    recorder = Recorder(run)
    batcher = _batcher(recorder, ["y"], pool, concurrency=1)
    first, dropped, waiting = _tagged(0, 2), _tagged(1, 1), _tagged(2, 3)
    try:
        first_task = asyncio.create_task(batcher.submit(first))
        await _started(started)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit(dropped), 0.05)
        waiting_task = asyncio.create_task(batcher.submit(waiting))
        await asyncio.sleep(0.01)
    finally:
        gate.set()
    first_out, _ = await asyncio.wait_for(first_task, WAIT)
    waiting_out, timing = await asyncio.wait_for(waiting_task, WAIT)

    np.testing.assert_array_equal(first_out["y"], first["x"] * 2)
    np.testing.assert_array_equal(waiting_out["y"], waiting["x"] * 2)
    assert timing.batch_requests == 1
    assert all(1 not in ids for ids in recorder.ids())
    after, _ = await asyncio.wait_for(batcher.submit(_tagged(3, 1)), WAIT)
    np.testing.assert_array_equal(after["y"], _tagged(3, 1)["x"] * 2)


async def test_a_queue_delay_lets_a_later_request_join(pool: ThreadPoolExecutor) -> None:
    """With a delay a request arriving after the first one shares its run; without, not."""

    async def two_apart(delay_us: int) -> tuple[Recorder, list[Timing]]:
        recorder = Recorder(_doubled)
        batcher = _batcher(
            recorder, ["y"], pool, max_batch_size=2, max_queue_delay_us=delay_us, concurrency=1
        )
        first = asyncio.create_task(batcher.submit(_tagged(0, 1)))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(batcher.submit(_tagged(1, 1)))
        done = await asyncio.wait_for(asyncio.gather(first, second), WAIT)
        for i, (outputs, _) in enumerate(done):
            np.testing.assert_array_equal(outputs["y"], _tagged(i, 1)["x"] * 2)
        return recorder, [timing for _, timing in done]

    # A delay far longer than the gap; the second request fills the batch (2 rows), so the run
    # starts as soon as it arrives and the test does not sit out the delay.
    joined, timings = await two_apart(1_000_000)
    assert joined.ids() == [{0, 1}]
    assert [t.batch_requests for t in timings] == [2, 2]

    apart, timings = await two_apart(0)
    assert apart.ids() == [{0}, {1}]
    assert [t.batch_requests for t in timings] == [1, 1]


async def test_a_lone_request_waits_out_the_delay_then_runs(pool: ThreadPoolExecutor) -> None:
    """Nobody else comes: the request still runs, alone, once the delay has passed."""
    delay_us = 50_000
    recorder = Recorder(_doubled)
    batcher = _batcher(recorder, ["y"], pool, max_batch_size=8, max_queue_delay_us=delay_us)
    feed = _tagged(5, 2)
    outputs, timing = await asyncio.wait_for(batcher.submit(feed), WAIT)
    np.testing.assert_array_equal(outputs["y"], feed["x"] * 2)
    assert recorder.ids() == [{5}]
    assert (timing.batch_requests, timing.batch_rows) == (1, 2)
    # It did wait for company (a lower bound only: never a claim about how fast things are).
    assert timing.queue_ns >= delay_us * 1000 // 2


async def test_close_fails_queued_requests_but_lets_the_running_one_finish(
    pool: ThreadPoolExecutor,
) -> None:
    """Unloading a model: queued requests learn why; the one already running completes."""
    started, gate = threading.Event(), threading.Event()

    def run(names: list[str], feed: Feed) -> list[Any]:
        started.set()
        gate.wait(WAIT)
        return [feed["x"] * 2]

    batcher = _batcher(run, ["y"], pool, concurrency=1)
    running = _tagged(0, 1)
    try:
        running_task = asyncio.create_task(batcher.submit(running))
        await _started(started)
        queued_task = asyncio.create_task(batcher.submit(_tagged(1, 1)))
        await asyncio.sleep(0.01)
        batcher.close()
        with pytest.raises(RuntimeError, match="unloaded"):
            await asyncio.wait_for(queued_task, WAIT)
    finally:
        gate.set()
    outputs, _ = await asyncio.wait_for(running_task, WAIT)
    np.testing.assert_array_equal(outputs["y"], running["x"] * 2)


def _add_model() -> bytes:
    """y = a + b with a and b FP32 [N, 2] (a two-input model, both with a batch axis)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return bytes(model.SerializeToString())


async def test_an_empty_request_gets_an_empty_answer(pool: ThreadPoolExecutor) -> None:
    """Zero rows batched between others: its slice is empty, its neighbours' are intact."""
    recorder = Recorder(_doubled)
    batcher = _batcher(recorder, ["y"], pool)
    feeds = [_tagged(1, 2), {"x": np.zeros((0, 4), np.float32)}, _tagged(2, 1)]
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(f) for f in feeds)), WAIT)
    for feed, (outputs, _) in zip(feeds, results, strict=True):
        assert outputs["y"].shape == feed["x"].shape
        np.testing.assert_array_equal(outputs["y"], feed["x"] * 2)
    assert len(recorder.feeds) == 1


async def test_inputs_disagreeing_on_rows_do_not_mix_with_other_requests(
    pool: ThreadPoolExecutor,
) -> None:
    """a [2, 2] with b [1, 2] is valid alone (b broadcasts) and passes the V2 signature check
    (both dimensions are -1); batched, it must not take rows of another request's ``b``."""
    session = create_session(_add_model(), ARENA)
    batcher = _batcher(session.run, ["y"], pool)
    first = {"a": np.array([[1, 1], [2, 2]], np.float32), "b": np.array([[10, 10]], np.float32)}
    second = {
        "a": np.array([[100, 100]], np.float32),
        "b": np.array([[1000, 1000], [2000, 2000]], np.float32),
    }
    alone = [session.run(["y"], feed)[0] for feed in (first, second)]
    results = await asyncio.wait_for(
        asyncio.gather(batcher.submit(first), batcher.submit(second), return_exceptions=True),
        WAIT,
    )
    for expected, result in zip(alone, results, strict=True):
        assert not isinstance(result, BaseException), result
        np.testing.assert_array_equal(result[0]["y"], expected)


async def test_closing_from_another_thread_happens_on_the_batchers_loop(
    pool: ThreadPoolExecutor,
) -> None:
    """The session cache evicts in the thread that loads another model: the queued request
    still learns its model was unloaded, through the batcher's own event loop."""
    started, gate = threading.Event(), threading.Event()

    def run(names: list[str], feed: Feed) -> list[Any]:
        started.set()
        gate.wait(WAIT)
        return [feed["x"] * 2]

    batcher = _batcher(run, ["y"], pool, concurrency=1)
    try:
        running_task = asyncio.create_task(batcher.submit(_tagged(0, 1)))
        await _started(started)
        queued_task = asyncio.create_task(batcher.submit(_tagged(1, 1)))
        await asyncio.sleep(0.01)
        closer = threading.Thread(target=batcher.close_from_any_thread)
        closer.start()
        closer.join(WAIT)
        with pytest.raises(RuntimeError, match="unloaded"):
            await asyncio.wait_for(queued_task, WAIT)
    finally:
        gate.set()
    await asyncio.wait_for(running_task, WAIT)


async def test_stats_count_a_shared_run_once_per_tenant(pool: ThreadPoolExecutor) -> None:
    """``execution_count`` is runs (Triton's meaning), ``inference_count`` rows: requests that
    shared one run count one execution for their tenant, each tenant sharing it counts it."""
    import uuid

    from backplane.inference.stats import StatsBook

    recorder = Recorder(_doubled)
    batcher = _batcher(recorder, ["y"], pool, max_batch_size=64, max_queue_delay_us=200_000)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(_tagged(i, 1)) for i in range(12))), WAIT
    )
    runs = {timing.run_id for _, timing in results}
    assert 0 not in runs
    assert len(runs) == len(recorder.feeds) < 12  # requests shared runs, one id per run

    book, tenant_a, tenant_b = StatsBook(), uuid.uuid4(), uuid.uuid4()
    for i, (_, timing) in enumerate(results):
        book.success(tenant_a if i % 2 else tenant_b, "m", "1", 1, timing, 1)
    book.success(tenant_a, "m", "1", 3, Timing(compute_ns=1), 1)  # an unbatched run of its own
    (stats_a,) = book.read(tenant_a, "m", ["1"]).model_stats
    (stats_b,) = book.read(tenant_b, "m", ["1"]).model_stats
    runs_a = {t.run_id for i, (_, t) in enumerate(results) if i % 2}
    runs_b = {t.run_id for i, (_, t) in enumerate(results) if not i % 2}
    assert (stats_a.inference_count, stats_a.execution_count) == (6 + 3, len(runs_a) + 1)
    assert (stats_b.inference_count, stats_b.execution_count) == (6, len(runs_b))
    assert stats_a.inference_stats.success.count == 7  # requests, not runs
