"""Estimators that break the kernel's training limits (one too slow, one too hungry), in a
module of their own so that importing the trainers does not import scikit-learn (the fit
process unpickles them from here)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Sleeps in ``fit`` far longer than any test's time limit."""

    def __init__(self, seconds: float = 600.0) -> None:
        self.seconds = seconds

    def fit(self, features: Any, labels: Any) -> SlowClassifier:
        time.sleep(self.seconds)
        return self


class HungryClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Allocates (and touches) ``megabytes`` of memory in ``fit``: fine on the machine, too
    much under a tight ``training.memory_bytes``."""

    def __init__(self, megabytes: int = 3072) -> None:
        self.megabytes = megabytes

    def fit(self, features: Any, labels: Any) -> HungryClassifier:
        self.ballast_ = np.ones(self.megabytes * 1024 * 1024, dtype=np.uint8)
        return self
