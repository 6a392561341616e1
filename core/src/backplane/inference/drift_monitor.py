"""Drift monitoring of served versions: sampling on the request path, alerts off it.

The request path (:meth:`DriftMonitor.observe`) does almost nothing: one random draw, and for
``inference.drift_sample_rate`` of the requests to a trained version (at most
:data:`MAX_SAMPLE_ROWS` of their rows) binning the rows against the version's training profile
into its :class:`~backplane.inference.drift.DriftWindow` under a lock. The window keeps bin
counts, so every ``inference.drift_check_rows`` sampled rows (once it holds
``inference.drift_min_rows``) each feature's PSI is recomputed from counts alone, features x
bins: microseconds, amortised over a hundred samples. What touches the database runs in tasks
of the server's event loop that no request waits for: reading the profile once (the first
sample of a version; rows sampled meanwhile wait in memory), and, when a feature's PSI passes
``inference.drift_psi_threshold``, emitting ``model.drift_detected`` (a tenant event, live)
with a ``model.drift_detected`` audit row in one transaction.

An alert is raised once per crossing: not again while the PSI stays above (until
``inference.drift_cooldown_s`` passed), again when it dropped below and crossed anew; and never
twice within the cooldown for one version, across processes (a conditional update of the
version's ``drift_alerted_at`` decides). Windows live in this process's memory, like
:mod:`backplane.inference.stats`: each server process watches the traffic it answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from opentelemetry import metrics
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane.db.tenancy import bind_tenant
from backplane.inference.drift import (
    COLLECTING,
    DRIFTING,
    NOT_SAMPLED,
    OFF,
    STABLE,
    DriftReport,
    DriftWindow,
    Reference,
)
from backplane.inference.drift_alerts import alert_data, record_alert
from backplane.inference.models import ModelVersion
from backplane.settings import InferenceSettings

log = logging.getLogger("backplane.inference.drift")

MAX_WATCHED_VERSIONS: Final = 256
"""Versions whose windows one process keeps (least recently sampled dropped first)."""
MAX_WINDOW_VALUES: Final = 1 << 20
"""Values (rows x features) one window holds at most: 1 MiB of bin indices."""
MAX_SAMPLE_ROWS: Final = 64
"""Rows one sampled request adds at most (its last ones): a large batch costs a sample no more
than a small one."""
RETRY_S: Final = 30.0
"""After a failed profile read, the next sample of that version tries again this much later."""

LOADING, NO_REFERENCE, UNREADABLE, READY = "loading", "no reference", "error", "ready"
_meter = metrics.get_meter("backplane.inference")
_alerts = _meter.create_counter(
    "backplane.inference.drift_alerts", unit="{alert}", description="Drift alerts raised"
)
_monitors: weakref.WeakSet[DriftMonitor] = weakref.WeakSet()


def _observe_psi(_options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
    for monitor in list(_monitors):
        for (name, version), value in monitor.max_psi().items():
            yield metrics.Observation(value, {"model": name, "version": version})


_meter.create_observable_gauge(
    "backplane.inference.drift_psi",
    callbacks=[_observe_psi],
    unit="1",
    description="Highest feature PSI of a version's last drift check (over tenants)",
)

Key = tuple[uuid.UUID, str, str]


@dataclass(eq=False)
class DriftState:
    """One (tenant, model, version)'s window, last PSI and alert state."""

    sha256: str
    status: str = LOADING
    reference: Reference | None = None
    window: DriftWindow | None = None
    retry_at: float = 0.0
    since_check: int = 0
    psi: list[float] = field(default_factory=list)
    computed_at: datetime | None = None
    computed_rows: int = 0
    above: bool = False
    """The last PSI was above the threshold (an alert is due only on a new crossing)."""
    alerted: float | None = None
    """``time.monotonic()`` of this process's last alert for the version."""
    alerted_at: datetime | None = None
    feature_names: list[str] = field(default_factory=list)
    pending: list[np.ndarray[Any, Any]] = field(default_factory=list)
    """Rows sampled while the profile is read (at most a window's worth), added once it is."""


def _rows_of(feed: dict[str, Any]) -> tuple[str, np.ndarray[Any, Any]] | None:
    """The input a profile describes: a model's only input, numeric, rows x features."""
    if len(feed) != 1:
        return None
    ((name, array),) = feed.items()
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind not in "biuf":
        return None
    return name, array


class DriftMonitor:
    """Per-process drift windows of trained versions, with their alerts."""

    def __init__(
        self,
        settings: InferenceSettings,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        events: Any,
    ) -> None:
        self.settings = settings
        self.enabled = settings.drift_sample_rate > 0 and sessionmaker is not None
        self._rate = settings.drift_sample_rate
        self._sessionmaker = sessionmaker
        self._events = events
        self._states: OrderedDict[Key, DriftState] = OrderedDict()
        self._lock = threading.Lock()
        self._draw = random.Random().random  # noqa: S311  (sampling, not secrets)
        self._tasks: set[asyncio.Task[None]] = set()
        _monitors.add(self)

    # -- the request path -------------------------------------------------------------------
    def observe(
        self, tenant: uuid.UUID, name: str, version: str, sha256: str, feed: dict[str, Any]
    ) -> None:
        """Maybe sample ``feed`` (a request's checked inputs) into the version's window."""
        if not self.enabled or self._draw() >= self._rate:
            return
        found = _rows_of(feed)
        if found is None:
            return
        key = (tenant, name, version)
        with self._lock:
            state = self._states.get(key)
            if state is None or state.sha256 != sha256:
                state = self._states[key] = DriftState(sha256)
                self._spawn(self._load(key, state, found[0]))
                while len(self._states) > MAX_WATCHED_VERSIONS:
                    self._states.popitem(last=False)
            else:
                self._states.move_to_end(key)
            if state.status in (LOADING, UNREADABLE):
                if state.status == UNREADABLE and time.monotonic() >= state.retry_at:
                    state.status = LOADING
                    self._spawn(self._load(key, state, found[0]))
                if sum(map(len, state.pending)) < self.settings.drift_window_rows:
                    state.pending.append(found[1][-MAX_SAMPLE_ROWS:].copy())
                return
            due = self._add(key, state, found[1][-MAX_SAMPLE_ROWS:])
        if due is not None:
            self._spawn(self._alert(key, state, *due))

    def _add(
        self, key: Key, state: DriftState, rows: np.ndarray[Any, Any]
    ) -> tuple[list[str], list[float], int] | None:
        """Add sampled ``rows`` to a ready window and, every ``drift_check_rows`` rows once it
        holds ``drift_min_rows``, recompute each feature's PSI from the window's bin counts
        (features x bins: microseconds). Under the lock; what an alert needs when one is due."""
        if state.status != READY:
            return None
        assert state.reference is not None
        assert state.window is not None
        if rows.shape[1] < state.reference.features:
            return None
        window = state.window
        window.add(rows)
        state.since_check += len(rows)
        needed = min(self.settings.drift_min_rows, window.capacity)
        if window.filled < needed or state.since_check < self.settings.drift_check_rows:
            return None
        state.since_check = 0
        values = window.psi()
        state.psi, state.computed_rows = values, window.filled
        state.computed_at = datetime.now(UTC)
        now, cooldown = time.monotonic(), self.settings.drift_cooldown_s
        above = max(values) > self.settings.drift_psi_threshold
        crossing = above and not state.above
        reminder = above and state.alerted is not None and now - state.alerted >= cooldown
        state.above = above
        if not (crossing or reminder):
            return None
        state.alerted = now
        return list(state.feature_names), values, window.filled

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- off the request path ---------------------------------------------------------------
    async def _load(self, key: Key, state: DriftState, input_name: str) -> None:
        """Read the version's training profile (once per version and process)."""
        tenant, name, version = key
        assert self._sessionmaker is not None
        try:
            async with self._sessionmaker() as session:
                bind_tenant(session, tenant)
                profile = await session.scalar(
                    select(ModelVersion.feature_profile).where(
                        ModelVersion.tenant_id == tenant,
                        ModelVersion.name == name,
                        ModelVersion.version == version,
                        ModelVersion.sha256 == state.sha256,
                    )
                )
            reference = Reference.from_profile(profile) if profile else None
        except Exception:
            log.warning("drift: reading the profile of %s/%s failed", name, version, exc_info=True)
            with self._lock:
                state.status, state.retry_at = UNREADABLE, time.monotonic() + RETRY_S
                state.pending = []
            return
        with self._lock:
            pending, state.pending = state.pending, []
            if reference is None:
                state.status = NO_REFERENCE
                return
            capacity = min(
                self.settings.drift_window_rows,
                max(MAX_WINDOW_VALUES // reference.features, 10),
            )
            state.reference, state.window = reference, DriftWindow(capacity, reference)
            state.feature_names = [f"{input_name}[{j}]" for j in range(reference.features)]
            state.status = READY
            alerts = [self._add(key, state, rows) for rows in pending]
        for due in alerts:
            if due is not None:
                self._spawn(self._alert(key, state, *due))

    async def _alert(
        self, key: Key, state: DriftState, names: list[str], values: list[float], rows: int
    ) -> None:
        _tenant, name, version = key
        assert self._sessionmaker is not None
        data = alert_data(name, version, names, values, self.settings.drift_psi_threshold, rows)
        try:
            when = await record_alert(
                self._sessionmaker,
                self._events,
                key,
                state.sha256,
                data,
                self.settings.drift_cooldown_s,
            )
        except Exception:
            log.exception("drift: recording the drift alert of %s/%s failed", name, version)
            return
        if when is None:
            return  # another process alerted within the cooldown (or the version is gone)
        with self._lock:
            state.alerted_at = when
        _alerts.add(1, {"model": name, "version": version})
        log.warning("drift: %s/%s drifted: %s", name, version, data["psi"])

    # -- reading and stopping ---------------------------------------------------------------
    def report(self, tenant: uuid.UUID, name: str, version: str) -> DriftReport:
        """What this process knows of the version's drift, for the monitoring endpoint."""
        settings = self.settings
        report = DriftReport(
            status=NOT_SAMPLED if self.enabled else OFF,
            sample_rate=settings.drift_sample_rate if self.enabled else 0.0,
            threshold=settings.drift_psi_threshold,
            min_rows=settings.drift_min_rows,
        )
        with self._lock:
            state = self._states.get((tenant, name, version))
            if state is None or not self.enabled:
                return report
            report.status = state.status
            if state.window is not None:
                report.window_rows, report.window_capacity = (
                    state.window.filled,
                    state.window.capacity,
                )
                report.sampled_rows = state.window.total
            if state.status == READY:
                report.status = (DRIFTING if state.above else STABLE) if state.psi else COLLECTING
            report.psi = {
                n: round(v, 6) for n, v in zip(state.feature_names, state.psi, strict=False)
            }
            report.max_psi = round(max(state.psi), 6) if state.psi else None
            report.computed_at = state.computed_at.isoformat() if state.computed_at else None
            report.computed_over_rows = state.computed_rows
            report.alerted_at = state.alerted_at.isoformat() if state.alerted_at else None
        return report

    def max_psi(self) -> dict[tuple[str, str], float]:
        """The highest last PSI per (model, version), over tenants (for the OpenTelemetry
        gauge, whose labels never name a tenant)."""
        out: dict[tuple[str, str], float] = {}
        with self._lock:
            for (_tenant, name, version), state in self._states.items():
                if state.psi:
                    out[name, version] = max(out.get((name, version), 0.0), *state.psi)
        return out

    async def drain(self) -> None:
        """Wait for the work in flight (profile reads, PSI, alerts): called at shutdown."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
