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


class Reference:
    """A recorded profile, ready to bin served rows (built once per version and process).

    The edges of every feature sit in one matrix (padded with +inf), so binning a block of rows
    is one comparison over rows x features x edges; PSI is then computed from bin counts alone
    (features x bins: microseconds), which is what lets a window keep counts, not rows."""

    def __init__(self, edges: list[Array], expected: list[Array]) -> None:
        if not edges or any(len(e) + 1 != len(x) for e, x in zip(edges, expected, strict=True)):
            raise ValueError("a malformed feature profile: edges and shares do not match")
        self.features = len(edges)
        self.width = max(len(e) for e in edges) + 1
        """Bins of the widest feature (the others' extra bins stay empty and are ignored)."""
        self._edges = np.full((self.features, self.width - 1), np.inf)
        expected_shares = np.zeros((self.features, self.width))
        self._valid = np.zeros((self.features, self.width), dtype=bool)
        self._nan_bin = np.array([len(e) for e in edges])
        for j, (cut, share) in enumerate(zip(edges, expected, strict=True)):
            self._edges[j, : len(cut)] = cut
            expected_shares[j, : len(share)] = share
            self._valid[j, : len(share)] = True
        self._expected = np.maximum(expected_shares, EPSILON)

    @classmethod
    def from_profile(cls, profile: dict[str, Any]) -> Reference:
        """:class:`ValueError` for a profile that does not hold together."""
        try:
            items = profile["features"]
            edges = [np.asarray(f["edges"], dtype=np.float64).reshape(-1) for f in items]
            expected = [np.asarray(f["expected"], dtype=np.float64).reshape(-1) for f in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a malformed feature profile: {exc}") from None
        return cls(edges, expected)

    def bins(self, rows: Array) -> Array:
        """Each value's bin (rows x :attr:`features`), as :func:`bin_counts` places it."""
        data = rows[:, : self.features]  # compared with float64 edges: upcast as it goes
        placed = (data[:, :, None] >= self._edges[None, :, :]).sum(axis=2)
        nan = np.isnan(data)
        return np.where(nan, self._nan_bin[None, :], placed) if nan.any() else placed

    def counts(self, bins: Array) -> Array:
        """Rows per bin per feature (features x :attr:`width`) of ``bins`` (:meth:`bins`)."""
        offsets = np.arange(self.features) * self.width
        flat = np.bincount((bins + offsets[None, :]).ravel(), minlength=self._valid.size)
        return flat.reshape(self.features, self.width)

    def psi_of_counts(self, counts: Array, total: int) -> list[float]:
        """Each feature's PSI for served bin ``counts`` of ``total`` rows."""
        actual = np.maximum(counts / total, EPSILON)
        terms = (actual - self._expected) * np.log(actual / self._expected)
        return [float(v) for v in np.where(self._valid, terms, 0.0).sum(axis=1)]

    def psi(self, rows: Array) -> list[float]:
        """Each profiled feature's PSI over ``rows`` (rows x at least :attr:`features`)."""
        return self.psi_of_counts(self.counts(self.bins(rows)), len(rows))


class DriftWindow:
    """The bins of the last ``capacity`` sampled rows of one version, and their counts per
    feature: a ring buffer (fixed memory) whose counts are kept up to date as rows come and
    go, so a PSI needs no pass over the window. Not thread-safe: the monitor holds its lock."""

    __slots__ = ("counts", "filled", "next", "reference", "ring", "total")

    def __init__(self, capacity: int, reference: Reference) -> None:
        self.reference = reference
        dtype = np.uint8 if reference.width <= 256 else np.uint16
        self.ring: Array = np.zeros((capacity, reference.features), dtype=dtype)
        self.counts: Array = np.zeros((reference.features, reference.width), dtype=np.int64)
        self.filled = 0
        self.next = 0
        self.total = 0
        """Rows ever added (sampled), not only those still in the window."""

    @property
    def capacity(self) -> int:
        return len(self.ring)

    def add(self, rows: Array) -> None:
        """Bin and append ``rows`` (rows x at least the profiled features); the oldest rows
        make room (and leave the counts)."""
        self.total += len(rows)
        rows = rows[-self.capacity :]
        count = len(rows)
        if count == 1:  # the usual sample: a few index operations, no bincount
            self._add_one(self.reference.bins(rows)[0])
            return
        if count == 0:
            return
        bins = self.reference.bins(rows)
        slots = (self.next + np.arange(count)) % self.capacity
        # until the ring is full, the next free slot is ``filled``: occupied slots are below it
        leaving = slots if self.filled == self.capacity else slots[slots < self.filled]
        if len(leaving):
            self.counts -= self.reference.counts(self.ring[leaving].astype(np.int64))
        self.ring[slots] = bins
        self.counts += self.reference.counts(bins)
        self.next = int(slots[-1] + 1) % self.capacity
        self.filled = min(self.capacity, self.filled + count)

    def _add_one(self, bins: Array) -> None:
        features = np.arange(len(bins))
        if self.filled == self.capacity:
            self.counts[features, self.ring[self.next]] -= 1
        self.ring[self.next] = bins
        self.counts[features, bins] += 1  # one (feature, bin) pair per feature: no repeats
        self.next = (self.next + 1) % self.capacity
        self.filled = min(self.capacity, self.filled + 1)

    def psi(self) -> list[float]:
        """Each feature's PSI over the rows in the window."""
        return self.reference.psi_of_counts(self.counts, self.filled)


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
