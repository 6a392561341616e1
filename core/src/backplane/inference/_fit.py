"""The fit process: train, measure, convert and check one trainer's estimator under limits.

Started by :mod:`backplane.inference.training` as ``python -m backplane.inference._fit
MEMORY_BYTES SETTINGS_JSON OUT_PATH``, so a trainer that needs more memory than allowed fails
alone (``RLIMIT_AS`` is set before numpy or scikit-learn is imported) and one that runs too long
can be killed without touching the server. The protocol, like the upload trial's:

* stdin: a pickle of ``(features, labels, estimator)`` written by the parent (never bytes from
  a client: the parent built it from what the trainer returned, in the same deployment);
* stdout: JSON lines, ``{"step": "..."}`` as work advances, then one verdict:
  ``{"ok": true, "metrics": {...}, ...}`` with the ONNX file written to OUT_PATH, or
  ``{"ok": false, "kind": "memory" | "failed", "error": "..."}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from backplane.inference._importance import permutation_importances
from backplane.inference._trial import _failure, _limit_resources
from backplane.inference.metrics import hit_rate_at_k, hit_rate_k


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _score(metric: str, estimator: Any, features: Any, labels: Any) -> float:
    from sklearn import metrics

    if metric == "rmse":
        return float(metrics.root_mean_squared_error(labels, estimator.predict(features)))
    if metric == "accuracy":
        return float(metrics.accuracy_score(labels, estimator.predict(features)))
    proba = estimator.predict_proba(features)
    k = hit_rate_k(metric)
    if k is not None:
        return hit_rate_at_k(labels, proba, estimator.classes_, k)
    if metric == "log_loss":
        return float(metrics.log_loss(labels, proba, labels=estimator.classes_))
    if proba.shape[1] == 2:  # auc
        return float(metrics.roc_auc_score(labels, proba[:, 1]))
    return float(metrics.roc_auc_score(labels, proba, multi_class="ovr", labels=estimator.classes_))


def score_values(metric: str, labels: Any, values: Any, classes: Any) -> float:
    """``metric`` of a trainer's baseline given as one value per row: for ``auc`` a score that
    ranks the positive (last) class higher, for ``rmse`` a prediction, for ``accuracy`` a
    label; other metrics need probabilities of every class and are refused."""
    import numpy as np
    from sklearn import metrics

    if metric == "auc" and len(classes) == 2:
        return float(metrics.roc_auc_score(np.asarray(labels) == classes[1], values))
    if metric == "rmse":
        return float(metrics.root_mean_squared_error(labels, values))
    if metric == "accuracy":
        return float(metrics.accuracy_score(labels, values))
    raise ValueError(f"a trainer's baseline scores cannot be measured with {metric!r}")


def _parameters(estimator: Any) -> dict[str, str]:
    return {k: repr(v)[:200] for k, v in sorted(estimator.get_params(deep=True).items())}


def _convert(estimator: Any, sample: Any) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.base import is_classifier
    from sklearn.pipeline import Pipeline

    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    # probabilities as a plain tensor (not a list of maps): a V2 datatype, comparable below
    options = {id(final): {"zipmap": False}} if is_classifier(final) else None
    return bytes(to_onnx(estimator, sample, options=options).SerializeToString())


def _onnx_gap(data: bytes, estimator: Any, features: Any) -> float:
    """The largest absolute difference between ONNX and scikit-learn on ``features``:
    probabilities for a classifier, predictions otherwise."""
    import numpy as np
    import onnxruntime as ort
    from sklearn.base import is_classifier

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: features})
    if is_classifier(estimator):
        expected, got = estimator.predict_proba(features), outputs[1]
        if not np.array_equal(np.asarray(outputs[0]).ravel(), estimator.predict(features)):
            return float("inf")
    else:
        expected, got = estimator.predict(features), outputs[0]
    return float(np.max(np.abs(np.asarray(got, np.float64).ravel() - np.ravel(expected))))


def _train(config: dict[str, Any], out_path: str) -> dict[str, Any]:
    import pickle

    import numpy as np
    from sklearn.base import is_classifier
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.model_selection import train_test_split

    from backplane.inference.drift import feature_profile

    raw_features, labels, estimator, *rest = pickle.load(sys.stdin.buffer)  # noqa: S301 (see docstring)
    features = np.asarray(raw_features, dtype=np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"the trainer returned features of shape {features.shape} and "
            f"{len(labels)} labels: features must be 2-D with one label per row"
        )
    # the trainer's own baseline (one score per row, e.g. a rules score), split with the rows
    scores = np.asarray(rest[0], dtype=np.float64) if rest and rest[0] is not None else None
    if scores is not None and scores.shape != (len(labels),):
        raise ValueError(
            f"the trainer's baseline has shape {scores.shape}: one score per row is needed"
        )
    extra = [] if scores is None else [scores]
    x_fit, x_hold, y_fit, y_hold, *held_scores = train_test_split(
        features, labels, *extra, test_size=config["holdout_fraction"], random_state=config["seed"]
    )
    _emit({"step": "fitting"})
    estimator.fit(x_fit, y_fit)
    _emit({"step": "evaluating"})
    metric = config["metric"]
    classifier = is_classifier(estimator)
    baseline = (DummyClassifier(strategy="prior") if classifier else DummyRegressor()).fit(
        x_fit, y_fit
    )
    metrics_of = {metric: _score(metric, estimator, x_hold, y_hold)}
    baseline_score = _score(metric, baseline, x_hold, y_hold)
    if held_scores:
        baseline_score = score_values(metric, y_hold, held_scores[1], estimator.classes_)
    _emit({"step": "converting"})
    data = _convert(estimator, x_fit[:1])
    _emit({"step": "checking"})
    gap = _onnx_gap(data, estimator, x_hold)
    if not gap <= config["tolerance"]:
        return {
            "ok": False,
            "kind": "mismatch",
            "error": f"ONNX outputs differ from scikit-learn's on the holdout by {gap:.3g} "
            f"(training.tolerance is {config['tolerance']:g})",
        }
    with open(out_path, "wb") as out:
        out.write(data)
    _emit({"step": "importance"})
    importance = permutation_importances(
        estimator, x_hold, y_hold, metric, int(config.get("importance_repeats", 0)), config["seed"]
    )
    return {
        "ok": True,
        "metrics": metrics_of,
        "baseline": {metric: baseline_score},
        "baseline_source": "trainer" if held_scores else "constant",
        "training_rows": len(x_fit),
        "holdout_rows": len(x_hold),
        "features": int(features.shape[1]),
        "onnx_max_abs_diff": gap,
        "parameters": _parameters(estimator),
        "estimator": type(estimator).__name__,
        "feature_means": [float(m) for m in x_fit.mean(axis=0)],
        "feature_importance": importance,
        "feature_profile": feature_profile(x_fit),  # what drift monitoring compares with
        # the columns of a classifier's probabilities, in order (a recommender maps them to items)
        "classes": [str(c) for c in estimator.classes_] if classifier else None,
    }


def main(argv: list[str]) -> int:
    """Run the fit; the exit status is 0 whenever a verdict was written to stdout."""
    memory_bytes, config, out_path = int(argv[0]), json.loads(argv[1]), argv[2]
    _limit_resources(memory_bytes)
    try:
        result = _train(config, out_path)
    except BaseException as exc:  # noqa: BLE001  (a trainer's estimator may raise anything)
        result = _failure(exc)
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
