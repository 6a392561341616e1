"""``hit_rate@k``: the trainer metric for recommenders (a classifier over items), on cases
worked out by hand, and how trainers name it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backplane import Trainer
from backplane._contract import higher_is_better
from backplane.inference._fit import _score
from backplane.inference.metrics import hit_rate_at_k, hit_rate_k
from backplane.inference.trainers import _trainer_items

CLASSES = np.array(["a", "b", "c", "d"])
PROBABILITIES = np.array(
    [
        [0.1, 0.6, 0.2, 0.1],  # label b: ranked first
        [0.5, 0.2, 0.3, 0.0],  # label c: one item above it
        [0.4, 0.3, 0.2, 0.1],  # label d: three items above it
        [0.7, 0.1, 0.1, 0.1],  # label e: never seen in training, never recommended
    ]
)
LABELS = np.array(["b", "c", "d", "e"])


@pytest.mark.parametrize(("k", "expected"), [(1, 1 / 4), (2, 2 / 4), (3, 2 / 4), (4, 3 / 4)])
def test_hit_rate_counts_rows_whose_item_is_in_the_top_k(k: int, expected: float) -> None:
    assert hit_rate_at_k(LABELS, PROBABILITIES, CLASSES, k) == expected


def test_ties_count_against_the_model() -> None:
    tied = np.array([[0.5, 0.5, 0.0, 0.0]])
    assert hit_rate_at_k(np.array(["a"]), tied, CLASSES, 1) == 0.0
    assert hit_rate_at_k(np.array(["a"]), tied, CLASSES, 2) == 1.0
    uniform = np.full((2, 4), 0.25)  # a constant ranking hits only when k covers every item
    assert hit_rate_at_k(np.array(["a", "d"]), uniform, CLASSES, 3) == 0.0
    assert hit_rate_at_k(np.array(["a", "d"]), uniform, CLASSES, 4) == 1.0


def test_the_fit_scores_a_classifier_with_it() -> None:
    class Ranked:
        classes_ = CLASSES

        def predict_proba(self, features: Any) -> Any:
            return PROBABILITIES[: len(features)]

    assert _score("hit_rate@2", Ranked(), np.zeros((4, 3)), LABELS) == 0.5
    with pytest.raises(ValueError, match="one probability per row and class"):
        hit_rate_at_k(LABELS[:3], PROBABILITIES, CLASSES, 2)


def test_metric_names() -> None:
    assert hit_rate_k("hit_rate@10") == 10
    assert hit_rate_k("hit_rate@0") is None
    assert higher_is_better("hit_rate@5") is True
    assert higher_is_better("log_loss") is False
    for bad in ("hit_rate@0", "hit_rate@", "hit_rate@10000", "precision"):
        with pytest.raises(ValueError, match="hit_rate@k"):
            higher_is_better(bad)
    fit = lambda kernel: None  # noqa: E731
    good = Trainer(name="shop.items", model="items", fit=fit, metric="hit_rate@10")
    assert _trainer_items("shop", good) == [good]
    assert good.higher_is_better
    with pytest.raises(ValueError, match=r"trainer 'shop\.bad': unknown metric 'precision'"):
        _trainer_items("shop", Trainer(name="shop.bad", model="items", fit=fit, metric="precision"))


def _fit_in_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, metric: str, data: tuple[Any, Any, Any]
) -> dict[str, Any]:
    """The fit process's work (``_fit._train``), here: the pickle on stdin, the verdict back."""
    import io
    import pickle
    import sys

    from backplane.inference._fit import _train

    stdin = io.TextIOWrapper(io.BytesIO(pickle.dumps(data)))
    monkeypatch.setattr(sys, "stdin", stdin)
    config = {
        "metric": metric,
        "holdout_fraction": 0.25,
        "seed": 0,
        "tolerance": 1e-4,
        "importance_repeats": 3,
    }
    return _train(config, str(tmp_path / "model.onnx"))


def test_a_recommender_is_measured_by_hit_rate_against_the_popularity_baseline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Users' two features say which of 6 items they pick; the model's top 2 hit far more
    often than the most popular items' (the prior baseline's ranking)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    features = rng.normal(size=(600, 2)).astype(np.float32)
    angle = np.arctan2(features[:, 1], features[:, 0])
    items = ((angle + np.pi) / (2 * np.pi) * 6).astype(np.int64) % 6
    verdict = _fit_in_process(
        monkeypatch, tmp_path, "hit_rate@2", (features, items, LogisticRegression())
    )
    assert verdict["ok"], verdict
    assert verdict["metrics"]["hit_rate@2"] > 0.8 > 0.5 > verdict["baseline"]["hit_rate@2"]
    assert verdict["feature_importance"] is None  # no per-row scorer for a ranking metric
    assert len(verdict["feature_means"]) == 2


def test_the_fit_records_feature_means_and_permutation_importance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    features = rng.normal(loc=[0.0, 5.0, -3.0], size=(400, 3)).astype(np.float32)
    labels = (features[:, 0] * 3 - (features[:, 1] - 5) > 0).astype(np.int64)  # 3rd unused
    verdict = _fit_in_process(
        monkeypatch, tmp_path, "auc", (features, labels, LogisticRegression())
    )
    assert verdict["ok"], verdict
    np.testing.assert_allclose(verdict["feature_means"], [0.0, 5.0, -3.0], atol=0.2)
    ranked = verdict["feature_importance"]
    assert [item["feature"] for item in ranked] == [0, 1, 2]
    assert ranked[0]["importance"] > ranked[1]["importance"] > 0.01 > abs(ranked[2]["importance"])
