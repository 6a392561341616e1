"""Per-model statistics: for ``/v2/models/{name}/stats`` and as OpenTelemetry metrics.

Kept per (tenant, model, version): a tenant sees the traffic it sent, never another tenant's,
even on a shared model. The OpenTelemetry instruments carry the model and version (not the
tenant: unbounded label values would swamp a metrics backend).

**In memory, on purpose**, for this server process since it started: that keeps the hot path
free of writes (one lock, a few additions), and is what Triton's are for, watching a running
server's latency split and batching. :data:`backplane.inference.routes.STATS_SCOPE` tells
clients so, and where the durable numbers are (the usage meters, the OpenTelemetry metrics).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from opentelemetry import metrics

from backplane.inference.batching import Timing

RECENT_RUNS = 1024
_meter = metrics.get_meter("backplane.inference")
_requests = _meter.create_counter(
    "backplane.inference.requests", unit="{request}", description="V2 inference requests"
)
_queue = _meter.create_histogram(
    "backplane.inference.queue_duration", unit="s", description="Time waiting for a batch slot"
)
_compute = _meter.create_histogram(
    "backplane.inference.compute_duration", unit="s", description="session.run time"
)
_batch = _meter.create_histogram(
    "backplane.inference.batch_size", unit="{request}", description="Requests per execution"
)


class Duration(msgspec.Struct):
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns


class InferenceStats(msgspec.Struct):
    success: Duration = msgspec.field(default_factory=Duration)
    fail: Duration = msgspec.field(default_factory=Duration)
    queue: Duration = msgspec.field(default_factory=Duration)
    compute_infer: Duration = msgspec.field(default_factory=Duration)


class ModelStats(msgspec.Struct):
    """Triton's statistics-extension shape, so its clients and dashboards read it as is."""

    name: str
    version: str
    last_inference: int = 0
    """Milliseconds since the epoch."""
    inference_count: int = 0
    """Rows inferred (batch entries)."""
    execution_count: int = 0
    """Runs this tenant's requests were part of (several requests may share one)."""
    inference_stats: InferenceStats = msgspec.field(default_factory=InferenceStats)


class ModelStatsResponse(msgspec.Struct):
    model_stats: list[ModelStats]


@dataclass
class StatsBook:
    """Counters by (tenant, model, version), updated under one lock (cheap, rarely contended)."""

    def __post_init__(self) -> None:
        self._stats: dict[tuple[uuid.UUID, str, str], ModelStats] = {}
        self._lock = threading.Lock()
        # Batched runs already counted per entry: the requests of one run report one by one.
        self._counted_runs: dict[tuple[uuid.UUID, str, str], OrderedDict[int, None]] = {}

    def _entry(self, tenant: uuid.UUID, name: str, version: str) -> ModelStats:
        key = (tenant, name, version)
        entry = self._stats.get(key)
        if entry is None:
            entry = self._stats[key] = ModelStats(name=name, version=version)
        return entry

    def success(
        self, tenant: uuid.UUID, name: str, version: str, rows: int, timing: Timing, total_ns: int
    ) -> None:
        with self._lock:
            entry = self._entry(tenant, name, version)
            entry.last_inference = time.time_ns() // 1_000_000
            entry.inference_count += rows
            if self._first_of_run((tenant, name, version), timing.run_id):
                entry.execution_count += 1
            stats = entry.inference_stats
            stats.success.add(total_ns)
            stats.queue.add(timing.queue_ns)
            stats.compute_infer.add(timing.compute_ns)
        attributes = {"model": name, "version": version}
        _requests.add(1, {**attributes, "outcome": "success"})
        _queue.record(timing.queue_ns / 1e9, attributes)
        _compute.record(timing.compute_ns / 1e9, attributes)
        _batch.record(timing.batch_requests, attributes)

    def _first_of_run(self, key: tuple[uuid.UUID, str, str], run_id: int) -> bool:
        """Whether this entry has not counted ``run_id`` yet (0, a run of one: never has). The
        last ``RECENT_RUNS`` runs are enough: a run's requests all finish within moments."""
        if run_id == 0:
            return True
        counted = self._counted_runs.setdefault(key, OrderedDict())
        if run_id in counted:
            return False
        counted[run_id] = None
        if len(counted) > RECENT_RUNS:
            counted.popitem(last=False)
        return True

    def failure(self, tenant: uuid.UUID, name: str, version: str, total_ns: int) -> None:
        with self._lock:
            self._entry(tenant, name, version).inference_stats.fail.add(total_ns)
        _requests.add(1, {"model": name, "version": version, "outcome": "failure"})

    def read(self, tenant: uuid.UUID, name: str, versions: list[str]) -> ModelStatsResponse:
        with self._lock:
            return ModelStatsResponse(
                model_stats=[
                    msgspec.structs.replace(self._stats[(tenant, name, v)])
                    if (tenant, name, v) in self._stats
                    else ModelStats(name=name, version=v)
                    for v in versions
                ]
            )
