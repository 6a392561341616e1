"""A trainer's own baseline (``fit`` returning a fourth item, one score per row): measured on
the same holdout rows as the model, recorded as the card's baseline, and refused when it does
not fit the rows or the metric."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backplane.inference._fit import score_values


def _fit(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, data: tuple[Any, ...]) -> dict[str, Any]:
    import io
    import pickle
    import sys

    from backplane.inference._fit import _train

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pickle.dumps(data))))
    config = {"metric": "auc", "holdout_fraction": 0.25, "seed": 0, "tolerance": 1e-4}
    return _train(config, str(tmp_path / "model.onnx"))


def test_score_values_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    assert score_values("auc", labels, [0.1, 0.4, 0.35, 0.8], np.array([0, 1])) == 0.75
    assert score_values("rmse", np.array([1.0, 3.0]), [2.0, 3.0], np.array([])) == pytest.approx(
        np.sqrt(0.5)
    )
    assert score_values("accuracy", labels, [0, 1, 1, 1], np.array([0, 1])) == 0.75
    with pytest.raises(ValueError, match="log_loss"):
        score_values("log_loss", labels, [0.1, 0.2, 0.3, 0.4], np.array([0, 1]))


def test_the_trainer_baseline_is_measured_on_the_holdout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A baseline that is the label itself ranks perfectly; one that is the label reversed
    ranks as badly as can be: the card says so, whatever the model does."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    features = rng.normal(size=(200, 2)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    perfect = _fit(monkeypatch, tmp_path, (features, labels, LogisticRegression(), labels * 1.0))
    assert perfect["ok"], perfect
    assert (perfect["baseline"]["auc"], perfect["baseline_source"]) == (1.0, "trainer")
    reversed_ = _fit(monkeypatch, tmp_path, (features, labels, LogisticRegression(), -labels))
    assert reversed_["baseline"]["auc"] == 0.0
    constant = _fit(monkeypatch, tmp_path, (features, labels, LogisticRegression(), None))
    assert (constant["baseline"]["auc"], constant["baseline_source"]) == (0.5, "constant")
    with pytest.raises(ValueError, match="one score per row"):
        _fit(monkeypatch, tmp_path, (features, labels, LogisticRegression(), labels[:10]))
