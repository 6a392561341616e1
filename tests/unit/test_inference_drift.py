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


def test_the_window_keeps_the_bin_counts_of_its_last_rows() -> None:
    rng = np.random.default_rng(4)
    reference = Reference.from_profile(feature_profile(rng.normal(size=(1000, 2))) or {})
    window = DriftWindow(50, reference)
    seen = []
    # not yet full, one row at a time, wrapping, larger than the window
    for size in (20, 1, 1, 25, 30, 7, 1, 120, 1, 49, 1):
        block = rng.normal(0.3, 1.2, size=(size, 2))
        seen.append(block)
        window.add(block)
        last = np.concatenate(seen)[-50:]
        assert window.filled == len(last)
        assert window.counts.tolist() == reference.counts(reference.bins(last)).tolist()
        assert window.psi() == pytest.approx(reference.psi(last), abs=1e-12)
    assert window.total == 256
    assert window.ring.shape == (50, 2)
    assert window.ring.dtype == np.uint8


def test_an_alert_is_due_once_per_crossing() -> None:
    """Above the threshold: one alert; staying above: none (until the cooldown); back below
    and above again: another (which the version row's cooldown may still refuse)."""
    import uuid

    from backplane.inference import drift_monitor
    from backplane.settings import InferenceSettings

    rng = np.random.default_rng(5)
    reference = Reference.from_profile(feature_profile(rng.normal(size=(2000, 2))) or {})
    monitor = drift_monitor.DriftMonitor(InferenceSettings(), object(), object())  # type: ignore[arg-type]
    key = (uuid.uuid4(), "m", "1")
    state = drift_monitor.DriftState("0" * 64, status=drift_monitor.READY, reference=reference)
    state.window = DriftWindow(600, reference)  # each block below replaces the whole window
    state.feature_names = ["x[0]", "x[1]"]
    same, moved = rng.normal(size=(600, 2)), rng.normal(size=(600, 2)) + np.array([0.0, 1.5])
    alerts = []
    for rows, alerted in ((same, 0), (moved, 1), (moved, 1), (same, 1), (moved, 2)):
        due = monitor._add(key, state, rows)
        if due is not None:
            alerts.append(due)
        assert len(alerts) == alerted
    names, values, window_rows = alerts[0]
    assert (names, window_rows) == (["x[0]", "x[1]"], 600)
    assert values[1] > 0.2 > values[0]
    assert monitor.report(key[0], "m", "1").status == "not sampled"  # observe() never ran
    too_few = drift_monitor.DriftState("1" * 64, status=drift_monitor.READY, reference=reference)
    too_few.window = DriftWindow(2000, reference)
    assert monitor._add(key, too_few, moved[:499]) is None  # below drift_min_rows: no PSI yet
    assert too_few.psi == []


def test_binning_a_window_at_once_matches_the_feature_by_feature_definition() -> None:
    rng = np.random.default_rng(8)
    training = np.column_stack(
        [rng.normal(size=3000), rng.integers(0, 3, size=3000), np.full(3000, 2.0)]
    )
    profile = feature_profile(training) or {}
    reference = Reference.from_profile(profile)
    served = np.column_stack(
        [rng.normal(0.5, 1, size=700), rng.integers(0, 4, size=700), rng.normal(2, 1, size=700)]
    )
    served[::50, 0] = np.nan
    by_feature = [
        psi(f["expected"], bin_counts(np.asarray(f["edges"]), served[:, j]) / len(served))
        for j, f in enumerate(profile["features"])
    ]
    assert reference.psi(served) == pytest.approx(by_feature, rel=1e-9, abs=1e-12)
