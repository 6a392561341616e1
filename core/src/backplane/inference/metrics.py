"""Ranking metrics the training kernel computes that scikit-learn has no scorer name for.

``hit_rate@k`` measures a recommender built as a classifier whose classes are the items: each
training row is one interaction (the features of the user or context, the item chosen as the
label), and the model's ``predict_proba`` ranks every item for a row. A holdout row is a hit
when its item is among the ``k`` items ranked highest; the metric is the share of hits. Ties
count against the model (an item is in the top ``k`` only when fewer than ``k`` other items
have a probability at least as high), so a constant ranking cannot score by luck, and an
item the model never saw in training is a miss.
"""

from __future__ import annotations

from typing import Any

from backplane._contract import hit_rate_k

__all__ = ["hit_rate_at_k", "hit_rate_k"]


def hit_rate_at_k(labels: Any, probabilities: Any, classes: Any, k: int) -> float:
    """The share of rows whose label is among the ``k`` classes with the highest probability
    (``probabilities[i, j]`` is row ``i``'s for ``classes[j]``)."""
    import numpy as np  # here: the fit process imports this module before its memory limit

    proba = np.asarray(probabilities, dtype=np.float64)
    classes = np.asarray(classes)
    labels = np.asarray(labels)
    if proba.ndim != 2 or proba.shape != (len(labels), len(classes)):
        raise ValueError(
            f"hit_rate@{k} needs one probability per row and class: got {proba.shape} for "
            f"{len(labels)} rows and {len(classes)} classes"
        )
    if len(labels) == 0:
        return 0.0
    column = {value: index for index, value in enumerate(classes.tolist())}
    hits = 0
    for row, label in zip(proba, labels.tolist(), strict=True):
        index = column.get(label)
        if index is None:
            continue  # an item the model cannot recommend
        others_as_high = int(np.count_nonzero(row >= row[index])) - 1
        hits += others_as_high < k
    return hits / len(labels)
