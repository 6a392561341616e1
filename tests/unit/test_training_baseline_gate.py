"""``Trainer.beat_baseline_to_promote``: a trained version that does not beat the constant
baseline of its own holdout is never promoted, whichever direction its metric goes; and the
card keeps a classifier's classes in the order of its probabilities."""

from __future__ import annotations

from typing import Any

import pytest

from backplane import Trainer
from backplane.inference.cards import model_card
from backplane.inference.training import _short_of_baseline


def card(metric: str, score: float, baseline: float, higher: bool = True) -> dict[str, Any]:
    return {
        "metric": metric,
        "higher_is_better": higher,
        "metrics": {metric: score},
        "baseline": {metric: baseline},
        "classes": ["b", "a"],
    }


@pytest.mark.parametrize(
    ("metric", "score", "baseline", "higher", "refused"),
    [
        ("hit_rate@5", 0.8, 0.4, True, False),
        ("hit_rate@5", 0.4, 0.4, True, True),  # a tie learnt nothing
        ("hit_rate@5", 0.3, 0.4, True, True),
        ("auc", 0.51, 0.5, True, False),
        ("rmse", 1.0, 2.0, False, False),
        ("rmse", 2.5, 2.0, False, True),
    ],
)
def test_a_version_short_of_its_baseline_is_refused(
    metric: str, score: float, baseline: float, higher: bool, refused: bool
) -> None:
    decision = _short_of_baseline(card(metric, score, baseline, higher))
    if refused:
        assert decision is not None
        assert not decision.promote
        assert "does not beat the baseline" in decision.reason
    else:
        assert decision is None


def test_a_card_without_the_metric_is_refused() -> None:
    decision = _short_of_baseline({**card("auc", 0.9, 0.5), "baseline": {}})
    assert decision is not None
    assert not decision.promote


def test_the_gate_is_off_unless_asked_and_the_card_keeps_the_classes() -> None:
    trainer = Trainer(name="x.y", model="m", fit=None, metric="auc")
    assert trainer.beat_baseline_to_promote is False
    shown = model_card("run", card("auc", 0.9, 0.5), None)
    assert shown.classes == ["b", "a"]
    assert model_card("run", {"metric": "rmse"}, None).classes is None
