"""The two trainers (``register_trainers``): the kernel splits each one's rows into a seeded
holdout, fits, measures against a constant baseline on the same split, converts to ONNX and
registers a version; both promote a version only when it beats that baseline
(``beat_baseline_to_promote``).

* ``education.next_course`` (model :data:`NEXT_COURSE_MODEL`, metric ``hit_rate@5``): one row
  per enrolment, the learner's history before it as features, the course as the label; a
  multinomial logistic regression over the courses. The baseline is the class prior: the
  courses ranked by how often they were taken next, that is popularity.
* ``education.at_risk`` (model :data:`AT_RISK_MODEL`, metric ``auc``): one row per finished
  enrolment (completed: 0; left, or still open after ``at_risk_horizon_days``: 1), the features
  of its first ``at_risk_window_days``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from backplane_education.recommendations.features import (
    by_learner,
    early_activity,
    enrolments,
    history_vector,
    risk_vector,
)

NEXT_COURSE_MODEL = "education_next_course"
AT_RISK_MODEL = "education_at_risk"


def _settings(kernel: Any) -> Any:
    """The plugin's recommendation settings (the training task runs as the kernel's, so the
    same binding is seen as this plugin's to read them)."""
    from backplane_education.recommendations.settings import RecommendationSettings

    plugin = kernel.for_plugin("education").plugin_settings
    found = getattr(plugin, "recommendations", None)
    return found if found is not None else RecommendationSettings()


async def next_course_data(kernel: Any) -> tuple[Any, Any, Any]:
    """``fit(kernel)``: (history, next course) rows of every learner of the tenant."""
    from sklearn.linear_model import LogisticRegression

    features, labels = [], []
    for history in by_learner(await enrolments(kernel)).values():
        for index, taken in enumerate(history):
            features.append(history_vector(history[:index], before=taken.enrolled_at))
            labels.append(str(taken.course_id))
    if len(set(labels)) < 2:
        raise ValueError("the next-course trainer needs enrolments in at least two courses")
    estimator = LogisticRegression(C=1.0, max_iter=500, random_state=0)
    return np.vstack(features), np.asarray(labels), estimator


def risk_label(
    status: str, enrolled_at: datetime, now: datetime, horizon_days: float
) -> int | None:
    """1: did not complete (left, or still open past the horizon); 0: completed; None: too
    recent to know."""
    if status == "completed":
        return 0
    if status == "unenrolled" or enrolled_at < now - timedelta(days=horizon_days):
        return 1
    return None


async def at_risk_data(kernel: Any) -> tuple[Any, Any, Any]:
    """``fit(kernel)``: the tenant's finished enrolments, their first days as features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    settings, now = _settings(kernel), datetime.now(UTC)
    rows = await enrolments(kernel)
    learners = by_learner(rows)
    progress = await early_activity(kernel, [row.id for row in rows])
    features, labels = [], []
    for row in rows:
        label = risk_label(row.status, row.enrolled_at, now, settings.at_risk_horizon_days)
        if label is None:
            continue
        features.append(
            risk_vector(row, progress[row.id], learners[row.user_id], settings.at_risk_window_days)
        )
        labels.append(label)
    if len(set(labels)) < 2:
        raise ValueError(
            "the at-risk trainer needs both completed and unfinished enrolments to learn from"
        )
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return np.vstack(features), np.asarray(labels), estimator


def education_trainers() -> list[Any]:
    from backplane import Trainer

    return [
        Trainer(
            name="education.next_course",
            model=NEXT_COURSE_MODEL,
            fit=next_course_data,
            metric="hit_rate@5",
            beat_baseline_to_promote=True,
            description="The course a learner takes next, from their enrolments, completions "
            "and quiz scores (hashed course history, logistic regression over courses)",
        ),
        Trainer(
            name="education.at_risk",
            model=AT_RISK_MODEL,
            fit=at_risk_data,
            metric="auc",
            beat_baseline_to_promote=True,
            description="Whether an enrolment will not complete, from its first days' activity "
            "and quiz scores and the learner's record",
        ),
    ]
