"""Global importance at training time: permutation importance on the holdout (fit process).

For each input column, the holdout rows' values of that column are shuffled (``repeats``
times, seeded) and the trainer's metric measured again; the importance is how much worse the
metric gets on average (scikit-learn's ``permutation_importance``, with the metric as a
scorer whose larger values are better). It describes the model as a whole, for any estimator,
unlike the per-request occlusion of :mod:`backplane.inference.explain`.
"""

from __future__ import annotations

from typing import Any

SCORERS = {
    "accuracy": "accuracy",
    "log_loss": "neg_log_loss",
    "rmse": "neg_root_mean_squared_error",
}


def _scorer(metric: str, classes: int) -> Any:
    if metric == "auc":
        return "roc_auc" if classes == 2 else "roc_auc_ovr"
    return SCORERS.get(metric)


def permutation_importances(
    estimator: Any, features: Any, labels: Any, metric: str, repeats: int, seed: int
) -> list[dict[str, float]] | None:
    """Each column's importance, most important first; None when ``repeats`` is 0 or the
    metric has no scorer (``hit_rate@k`` scores whole rankings, not rows)."""
    import numpy as np
    from sklearn.inspection import permutation_importance

    scorer = _scorer(metric, len(np.unique(labels)))
    if repeats <= 0 or scorer is None:
        return None
    result = permutation_importance(
        estimator, features, labels, scoring=scorer, n_repeats=repeats, random_state=seed
    )
    found = [
        {"feature": int(i), "importance": float(m), "std": float(s)}
        for i, (m, s) in enumerate(
            zip(result.importances_mean, result.importances_std, strict=True)
        )
    ]
    return sorted(found, key=lambda item: -item["importance"])
