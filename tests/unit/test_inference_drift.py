"""Drift arithmetic: PSI against hand-computed values, profiles, binning and the window."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backplane.inference.drift import (
    EPSILON,
    DriftWindow,
    Reference,
    bin_counts,
    feature_profile,
    psi,
)


def test_psi_matches_the_hand_computed_value() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, abs=1e-12)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_an_empty_bin_is_smoothed_with_epsilon_not_infinite() -> None:
    # the third bin: training had none, serving has 10 %; epsilon stands in for the zero
    value = psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1])
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    assert value == pytest.approx(by_hand, abs=1e-12)
    assert value == pytest.approx(0.712399, abs=1e-6)
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))


def test_bins_are_closed_below_and_open_above() -> None:
    edges = np.array([1.0, 2.0])
    values = np.array([0.5, 1.0, 1.5, 2.0, 9.0, np.nan])
    # below 1 | [1, 2) | 2 and above (NaN sorts last)
    assert bin_counts(edges, values).tolist() == [1, 2, 3]


def test_a_profile_has_decile_edges_and_their_shares() -> None:
    values = np.arange(1000, dtype=np.float64)
    constant = np.full(1000, 3.0)
    profile = feature_profile(np.column_stack([values, constant]))
    assert profile is not None
    assert (profile["bins"], profile["rows"]) == (10, 1000)
    spread, flat = profile["features"]
    assert len(spread["edges"]) == 9
    assert spread["expected"] == pytest.approx([0.1] * 10, abs=0.002)
    assert sum(spread["expected"]) == pytest.approx(1.0)
    # one distinct value: one edge, every row in the bin at and above it
    assert flat == {"edges": [3.0], "expected": [0.0, 1.0]}
    assert feature_profile(np.zeros((0, 3))) is None
    assert feature_profile(np.zeros(5)) is None


def test_psi_of_the_same_distribution_is_small_and_of_a_shifted_one_large() -> None:
    rng = np.random.default_rng(3)
    training = rng.normal(size=(2000, 3))
    reference = Reference.from_profile(feature_profile(training) or {})
    assert reference.features == 3
    same = reference.psi(rng.normal(size=(500, 3)))
    assert max(same) < 0.1  # stable, by the usual reading
    moved = rng.normal(size=(500, 3))
    moved[:, 1] += 1.0  # one standard deviation
    shifted = reference.psi(moved)
    assert shifted[1] > 0.2 > max(shifted[0], shifted[2])


def test_a_malformed_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed"):
        Reference.from_profile({"features": [{"edges": [1.0], "expected": [1.0]}]})
    with pytest.raises(ValueError, match="malformed"):
        Reference.from_profile({"nothing": 1})


def test_the_window_keeps_the_last_rows_in_fixed_memory() -> None:
    window = DriftWindow(5, 2)
    window.add(np.array([[0, 0], [1, 1], [2, 2]], dtype=np.float32))
    assert window.filled == 3
    assert sorted(window.snapshot()[:, 0].tolist()) == [0, 1, 2]
    window.add(np.array([[3, 3], [4, 4], [5, 5]], dtype=np.float32))  # wraps around
    assert (window.filled, window.total) == (5, 6)
    assert sorted(window.snapshot()[:, 0].tolist()) == [1, 2, 3, 4, 5]
    window.add(np.arange(16, dtype=np.float32).reshape(8, 2))  # larger than the window
    assert sorted(window.snapshot()[:, 0].tolist()) == [6, 8, 10, 12, 14]
    assert window.rows.shape == (5, 2)


def test_an_alert_is_due_once_per_crossing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold: one alert; staying above: none (until the cooldown); back below
    and above again: another (which the version row's cooldown may still refuse)."""
    import asyncio
    import uuid
    from datetime import UTC, datetime

    from backplane.inference import drift_monitor
    from backplane.settings import InferenceSettings

    alerts: list[dict[str, object]] = []

    async def record_alert(*args: object) -> datetime:
        alerts.append(args[4])  # type: ignore[arg-type]
        return datetime.now(UTC)

    monkeypatch.setattr(drift_monitor, "record_alert", record_alert)
    rng = np.random.default_rng(5)
    reference = Reference.from_profile(feature_profile(rng.normal(size=(2000, 2))) or {})
    monitor = drift_monitor.DriftMonitor(InferenceSettings(), object(), object())  # type: ignore[arg-type]
    key = (uuid.uuid4(), "m", "1")
    state = drift_monitor.DriftState("0" * 64, status=drift_monitor.READY, reference=reference)
    state.feature_names = ["x[0]", "x[1]"]
    same, moved = rng.normal(size=(600, 2)), rng.normal(size=(600, 2)) + np.array([0.0, 1.5])

    async def check(rows: np.ndarray) -> None:
        await monitor._evaluate(key, state, rows)

    for rows, alerted in ((same, 0), (moved, 1), (moved, 1), (same, 1), (moved, 2)):
        asyncio.run(check(rows))
        assert len(alerts) == alerted
    assert alerts[0]["drifted_features"] == 1
    assert list(alerts[0]["psi"]) == ["x[1]"]  # type: ignore[call-overload]
    assert monitor.report(key[0], "m", "1").status == "not sampled"  # observe() never ran
