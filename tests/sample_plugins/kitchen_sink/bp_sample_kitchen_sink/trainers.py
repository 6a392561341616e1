"""Trainers (``register_trainers``): one that learns from the tenant's notes, and two that
break the kernel's limits (one too slow, one too hungry) for the limit tests.

A note whose body looks like ``"0.5 -1.2 0.3 2.0 | 1"`` is a labelled row: four features and
a 0/1 label. Notes that do not look like that are not training data and are skipped.

scikit-learn is imported when a trainer runs, not with this module: the plugin registers its
trainers at every start, and importing scikit-learn (and scipy) there cost every
``backplane serve`` of the test suite seconds of start-up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from bp_sample_kitchen_sink.models import Note


def note_row(features: list[float], label: int) -> str:
    """The body of a note holding one labelled row."""
    return " ".join(f"{v:.6f}" for v in features) + f" | {label}"


def _parse(body: str) -> tuple[list[float], int] | None:
    left, sep, right = body.partition("|")
    try:
        values = [float(v) for v in left.split()]
        label = int(right)
    except ValueError:
        return None
    return (values, label) if sep and len(values) == 4 else None


async def notes_training_data(kernel: Any) -> tuple[Any, Any, Any]:
    """The tenant's labelled notes (read through ``kernel.db``: only this tenant's rows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [
        r
        for body in await kernel.db.scalars(select(Note.body).order_by(Note.id))
        if (r := _parse(body))
    ]
    features = np.array([r[0] for r in rows], dtype=np.float32).reshape(-1, 4)
    labels = np.array([r[1] for r in rows], dtype=np.int64)
    return features, labels, make_pipeline(StandardScaler(), LogisticRegression())


def synthetic(rows: int = 200, seed: int = 7) -> tuple[Any, Any]:
    """Rows with real structure: the label is the sign of a fixed linear score plus noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 4)).astype(np.float32)
    score = features @ np.array([1.5, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=rows)
    return features, (score > 0).astype(np.int64)


def slow_training_data(kernel: Any) -> tuple[Any, Any, Any]:
    from bp_sample_kitchen_sink.estimators import SlowClassifier

    return (*synthetic(), SlowClassifier())


def hungry_training_data(kernel: Any) -> tuple[Any, Any, Any]:
    from bp_sample_kitchen_sink.estimators import HungryClassifier

    return (*synthetic(), HungryClassifier())
