"""The model card of a trained version, as ``GET /api/models/{name}`` shows it.

A training run that succeeds stores its card (a JSON document) on its row
(:class:`backplane.inference.training_runs.TrainingRun`); this is the typed, stable view of it
next to the version the run registered. Uploaded versions have none: nothing measured them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class FeatureImportance(msgspec.Struct, kw_only=True):
    """Permutation importance of one input column on the holdout (computed at training time):
    how much the trainer's metric worsens, on average over the repeats, when that column's
    values are shuffled among the holdout rows (0: the model does not use it)."""

    feature: int
    """The column's index in the model's input tensor."""
    importance: float
    std: float


class ModelCard(msgspec.Struct, kw_only=True):
    """What a training run measured about the version it registered."""

    run_id: str
    trainer: str
    metric: str
    """The metric that decides which version is better (``auc``, ``log_loss``, ...)."""
    higher_is_better: bool
    holdout_metric: float | None
    """``metric`` of this version on the seeded holdout."""
    baseline_metric: float | None
    """``metric`` of a constant baseline (class prior or mean) on the same holdout."""
    metrics: dict[str, float]
    baseline: dict[str, float]
    training_rows: int
    holdout_rows: int
    features: int
    estimator: str
    """The class of the trainer's estimator or pipeline."""
    parameters: dict[str, str]
    """The estimator's parameters (``get_params(deep=True)``, each value's repr, capped)."""
    onnx_max_abs_diff: float
    """Largest difference between ONNX and scikit-learn outputs on the holdout."""
    feature_importance: list[FeatureImportance] | None = None
    """Permutation importance on the holdout, most important first (None: not computed)."""
    promoted: bool | None = None
    """Whether the run moved the ``production`` alias to this version."""
    promotion_reason: str | None = None
    trained_at: str | None = None
    """When the run finished (ISO 8601)."""
    classes: list[str] | None = None
    """A classifier's classes, as text, in the order of its ``probabilities`` columns (None
    for a regressor): a recommender built as a classifier over items reads its items here."""


def model_card(run_id: str, card: dict[str, Any], finished_at: datetime | None) -> ModelCard:
    """The typed card of a run's stored ``card`` document."""
    metric = str(card.get("metric", ""))
    metrics = dict(card.get("metrics") or {})
    baseline = dict(card.get("baseline") or {})
    promotion = card.get("promotion") or {}
    importance = card.get("feature_importance")
    return ModelCard(
        run_id=run_id,
        trainer=str(card.get("trainer", "")),
        metric=metric,
        higher_is_better=bool(card.get("higher_is_better", True)),
        holdout_metric=metrics.get(metric),
        baseline_metric=baseline.get(metric),
        metrics=metrics,
        baseline=baseline,
        training_rows=int(card.get("training_rows", 0)),
        holdout_rows=int(card.get("holdout_rows", 0)),
        features=int(card.get("features", 0)),
        estimator=str(card.get("estimator", "")),
        parameters=dict(card.get("parameters") or {}),
        onnx_max_abs_diff=float(card.get("onnx_max_abs_diff", 0.0)),
        feature_importance=None
        if importance is None
        else msgspec.convert(importance, list[FeatureImportance]),
        promoted=promotion.get("promoted"),
        promotion_reason=promotion.get("why"),
        trained_at=finished_at.isoformat() if finished_at else None,
        classes=card.get("classes"),
    )
