"""Input drift arithmetic: the training data's feature profile and the population stability
index (PSI) of served inputs against it.

A **profile** is recorded when a version is trained (:func:`feature_profile`, in the fit
process, on the training rows): per feature, the bin edges at the training values' deciles and
the share of training rows in each bin. Served rows sampled into a :class:`DriftWindow` are
binned the same way (:class:`Reference`), and each feature's PSI is

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with both shares floored at :data:`EPSILON` (the usual smoothing: an empty bin would make the
logarithm infinite). The common reading: below 0.1 stable, 0.1-0.2 a moderate shift, above 0.2
a significant one (``inference.drift_psi_threshold``). Pure numpy, no I/O: the monitor
(:mod:`backplane.inference.drift_monitor`) decides when to compute and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

PROFILE_BINS: Final = 10
"""Bins per feature: edges at the training values' deciles."""
EPSILON: Final = 1e-4
"""Floor of a bin's share in the PSI sum (smoothing for empty bins)."""
MAX_PROFILE_FEATURES: Final = 64
"""Features profiled per model (the first ones); the rest of a wider input is not watched for
drift. Keeps a profile small (~200 bytes a feature): it travels in the fit's verdict line."""

Array = npt.NDArray[Any]


def bin_counts(edges: Array, values: Array) -> Array:
    """How many ``values`` fall in each of the ``len(edges) + 1`` bins: bin ``i`` holds values
    ``>= edges[i - 1]`` and ``< edges[i]`` (the outer bins are open). NaN lands in the last."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def feature_profile(features: Any, bins: int = PROFILE_BINS) -> dict[str, Any] | None:
    """The profile of training ``features`` (rows x features) as JSON-ready data, or None when
    there is nothing to profile (not 2-D, no rows)."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        return None
    data = data[:, :MAX_PROFILE_FEATURES]
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    profiled = []
    for column in data.T:
        finite = column[np.isfinite(column)]
        cuts = np.quantile(finite, quantiles) if finite.size else np.empty(0)
        # 7 significant digits (float32's): short JSON; the shares are counted on these edges.
        # Repeated quantiles (a feature with few distinct values) collapse into one edge.
        edges = np.unique([float(f"{cut:.7g}") for cut in cuts])
        expected = bin_counts(edges, column) / len(column)
        profiled.append(
            {"edges": edges.tolist(), "expected": [round(float(p), 6) for p in expected]}
        )
    return {"bins": bins, "rows": int(data.shape[0]), "features": profiled}


def psi(expected: Any, actual: Any, epsilon: float = EPSILON) -> float:
    """The population stability index of the ``actual`` bin shares against ``expected``."""
    want = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    got = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((got - want) * np.log(got / want)))


@dataclass(frozen=True)
class Reference:
    """A recorded profile, ready to bin served rows (built once per version and process)."""

    edges: tuple[Array, ...]
    expected: tuple[Array, ...]

    @property
    def features(self) -> int:
        return len(self.edges)

    @classmethod
    def from_profile(cls, profile: dict[str, Any]) -> Reference:
        """:class:`ValueError` for a profile that does not hold together."""
        try:
            items = profile["features"]
            edges = tuple(np.asarray(f["edges"], dtype=np.float64) for f in items)
            expected = tuple(np.asarray(f["expected"], dtype=np.float64) for f in items)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a malformed feature profile: {exc}") from None
        if not edges or any(len(e) + 1 != len(x) for e, x in zip(edges, expected, strict=True)):
            raise ValueError("a malformed feature profile: edges and shares do not match")
        return cls(edges, expected)

    def psi(self, rows: Array) -> list[float]:
        """Each profiled feature's PSI over ``rows`` (rows x at least :attr:`features`)."""
        total = len(rows)
        return [
            psi(expected, bin_counts(edges, rows[:, j]) / total)
            for j, (edges, expected) in enumerate(zip(self.edges, self.expected, strict=True))
        ]


class DriftWindow:
    """The last ``capacity`` sampled rows of one version (a ring buffer: fixed memory, adding a
    block is one or two slice copies). Not thread-safe: the monitor holds its lock."""

    __slots__ = ("filled", "next", "rows", "total")

    def __init__(self, capacity: int, features: int) -> None:
        self.rows: Array = np.zeros((capacity, features), dtype=np.float32)
        self.filled = 0
        self.next = 0
        self.total = 0
        """Rows ever added (sampled), not only those still in the window."""

    @property
    def capacity(self) -> int:
        return len(self.rows)

    def add(self, block: Array) -> None:
        """Append ``block`` (rows x features); the oldest rows make room."""
        count, capacity = len(block), self.capacity
        self.total += count
        if count >= capacity:
            self.rows[:] = block[-capacity:]
            self.next, self.filled = 0, capacity
            return
        end = self.next + count
        if end <= capacity:
            self.rows[self.next : end] = block
        else:
            first = capacity - self.next
            self.rows[self.next :] = block[:first]
            self.rows[: count - first] = block[first:]
        self.next = end % capacity
        self.filled = min(capacity, self.filled + count)

    def snapshot(self) -> Array:
        """A copy of the rows in the window (in no particular order: PSI does not care)."""
        return self.rows[: self.filled].copy()


OFF, NOT_SAMPLED, COLLECTING, STABLE, DRIFTING = (
    "off",
    "not sampled",
    "collecting",
    "stable",
    "drifting",
)


class DriftReport(msgspec.Struct, kw_only=True):
    """A version's input drift as this server process sees it.

    ``status``: ``off`` (``inference.drift_sample_rate`` is 0), ``not sampled`` (no request
    sampled yet), ``loading`` (reading the training profile), ``no reference`` (not trained by
    the kernel: an upload has no training profile), ``error`` (the profile could not be read;
    retried), ``collecting`` (fewer than ``min_rows`` rows so far), ``stable`` or ``drifting``
    (some feature's last PSI is above ``threshold``)."""

    status: str
    sample_rate: float
    threshold: float
    min_rows: int
    window_rows: int = 0
    """Rows in the sliding window now."""
    window_capacity: int = 0
    sampled_rows: int = 0
    """Rows sampled since this process first saw the version."""
    psi: dict[str, float] = msgspec.field(default_factory=dict)
    """Each feature's PSI at the last computation (``input[column]``)."""
    max_psi: float | None = None
    computed_at: str | None = None
    computed_over_rows: int = 0
    alerted_at: str | None = None
    """The last drift alert for the version (any process's, from the version row)."""
