"""Per-version monitoring: request counts, error rate, latency percentiles and input drift.

Kept per (tenant, model, version) in this server process's memory, like
:mod:`backplane.inference.stats` (whose counters these complement): the request path adds one
number under a lock. Latency percentiles are over the last :data:`LATENCY_WINDOW` successful
requests (a ring of durations: bounded, exact within it); counts since the process started.
The same numbers go to OpenTelemetry, labelled by model and version, never tenant:
``backplane.inference.request_duration`` (a histogram, seconds, ``outcome`` success/failure:
percentiles and error rate across processes), beside ``backplane.inference.requests``; the drift
monitor adds ``backplane.inference.drift_psi`` and ``backplane.inference.drift_alerts``.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import numpy as np
from opentelemetry import metrics
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane._contract import ModelRef
from backplane.inference.drift import DriftReport
from backplane.inference.drift_monitor import DriftMonitor
from backplane.settings import InferenceSettings

LATENCY_WINDOW: Final = 1024
"""Successful requests per version whose durations the percentiles are computed over."""
DURATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SHIPPED: Final = ("kernel", "plugin")

_meter = metrics.get_meter("backplane.inference")
_duration = _meter.create_histogram(
    "backplane.inference.request_duration",
    unit="s",
    description="Time to answer an inference request (queue and run), by outcome",
    explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
)


class Latency(msgspec.Struct, kw_only=True):
    """Percentiles of the last ``window`` successful requests (None before the first)."""

    window: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None


class VersionMonitoring(msgspec.Struct, kw_only=True):
    """One version, as the answering server process saw the caller's tenant's requests."""

    version: str
    requests: int
    successes: int
    failures: int
    """Requests that failed while running (timeouts, runtime errors); refused inputs (4xx)
    never reach the model and are not counted."""
    error_rate: float
    """``failures / requests`` (0 with no requests)."""
    last_request_at: str | None
    latency: Latency
    drift: DriftReport


class ModelMonitoring(msgspec.Struct, kw_only=True):
    """The answer of ``GET /api/models/{name}/monitoring``."""

    model: str
    scope: str
    versions: list[VersionMonitoring]


class _Entry:
    __slots__ = ("durations", "failures", "filled", "last", "next", "successes")

    def __init__(self) -> None:
        self.durations = np.zeros(LATENCY_WINDOW, dtype=np.int64)
        self.next = self.filled = self.successes = self.failures = 0
        self.last = 0.0


class Monitoring:
    """The catalog's monitoring: the latency book and the drift monitor."""

    def __init__(
        self,
        settings: InferenceSettings,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        events: Any = None,
    ) -> None:
        self._entries: dict[tuple[uuid.UUID, str, str], _Entry] = {}
        self._lock = threading.Lock()
        # Alerts need the events rail; a catalog without it (the CLI's, tests') watches nothing.
        self.drift = DriftMonitor(settings, sessionmaker if events is not None else None, events)

    def _entry(self, key: tuple[uuid.UUID, str, str]) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        return entry

    def success(
        self,
        tenant: uuid.UUID,
        name: str,
        version: str,
        elapsed_ns: int,
        ref: ModelRef,
        feed: dict[str, Any],
    ) -> None:
        with self._lock:
            entry = self._entry((tenant, name, version))
            entry.successes += 1
            entry.last = time.time()
            entry.durations[entry.next] = elapsed_ns
            entry.next = (entry.next + 1) % LATENCY_WINDOW
            entry.filled = min(entry.filled + 1, LATENCY_WINDOW)
        _duration.record(
            elapsed_ns / 1e9, {"model": name, "version": version, "outcome": "success"}
        )
        if ref.source not in SHIPPED:  # only a tenant's trained versions have a profile
            self.drift.observe(tenant, name, version, ref.key, feed)

    def failure(self, tenant: uuid.UUID, name: str, version: str, elapsed_ns: int) -> None:
        with self._lock:
            entry = self._entry((tenant, name, version))
            entry.failures += 1
            entry.last = time.time()
        _duration.record(
            elapsed_ns / 1e9, {"model": name, "version": version, "outcome": "failure"}
        )

    def read(self, tenant: uuid.UUID, name: str, versions: list[str]) -> list[VersionMonitoring]:
        return [self._read_one(tenant, name, v) for v in versions]

    def _read_one(self, tenant: uuid.UUID, name: str, version: str) -> VersionMonitoring:
        with self._lock:
            entry = self._entries.get((tenant, name, version)) or _Entry()
            durations = entry.durations[: entry.filled].copy()
            successes, failures, last = entry.successes, entry.failures, entry.last
        latency = Latency(window=len(durations))
        if len(durations):
            p50, p90, p99 = np.percentile(durations, [50, 90, 99]) / 1e6
            latency.p50_ms, latency.p90_ms, latency.p99_ms = (
                round(float(p50), 3),
                round(float(p90), 3),
                round(float(p99), 3),
            )
        requests = successes + failures
        return VersionMonitoring(
            version=version,
            requests=requests,
            successes=successes,
            failures=failures,
            error_rate=failures / requests if requests else 0.0,
            last_request_at=datetime.fromtimestamp(last, UTC).isoformat() if last else None,
            latency=latency,
            drift=self.drift.report(tenant, name, version),
        )
