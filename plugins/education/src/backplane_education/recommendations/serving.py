"""Scoring through the kernel's model runtime (``kernel.models``): the tenant's ``production``
version of each model only (a version that did not beat its baseline is never promoted, so
never serves), metered as any inference (``inference.requests`` / ``inference.rows``).

A recommendation is explained by occlusion: the learner's history is scored again without each
completed course (in the same call), and the completed course whose absence lowers the
recommended course's probability the most is the "because you completed X"."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy import select

from backplane_education.common import EducationError
from backplane_education.models import Course, Enrolment
from backplane_education.recommendations.features import (
    Taken,
    early_activity,
    enrolments,
    history_vector,
    risk_vector,
)
from backplane_education.recommendations.trainers import AT_RISK_MODEL, NEXT_COURSE_MODEL

SERVED = "production"
INPUT = "X"
"""The input name of the trainers' ONNX models (skl2onnx names a numpy sample's input X)."""


async def _classes(kernel: Any, model: str) -> list[str]:
    try:
        card = await kernel.models.card(model, SERVED)
    except LookupError:
        card = None
    if card is None or not card.classes:
        raise EducationError(
            409,
            f"no promoted {model} model yet: train one (POST /api/models/{model}/train) on "
            f"enough of the tenant's enrolments",
        )
    return list(card.classes)


async def _infer(kernel: Any, model: str, rows: np.ndarray[Any, Any], classes: list[str]) -> Any:
    outputs = await kernel.models.infer(model, {INPUT: rows}, version=SERVED)
    probabilities = np.asarray(outputs["probabilities"], np.float64)
    if probabilities.shape[1] != len(classes):  # production moved between the two reads
        raise EducationError(409, f"the {model} model changed while answering: try again")
    return probabilities


async def recommend(kernel: Any, user_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    """The learner's next courses, best first, each with its score and reason."""
    classes = await _classes(kernel, NEXT_COURSE_MODEL)
    history = await enrolments(kernel, user_id)
    completed = [t for t in history if t.completed_at is not None]
    rows = [history_vector(history)]
    for taken in completed:  # occlusion: the history without each completed course
        rows.append(history_vector([t for t in history if t.id != taken.id]))
    probabilities = await _infer(kernel, NEXT_COURSE_MODEL, np.vstack(rows), classes)
    taken_ids = {str(t.course_id) for t in history}
    published = {
        str(row.id): row.title
        for row in await kernel.db.execute(
            select(Course.id, Course.title).where(Course.published_version.is_not(None))
        )
    }
    titles = {str(t.course_id): published.get(str(t.course_id), "") for t in completed}
    ranked = sorted(
        (i for i, c in enumerate(classes) if c not in taken_ids and c in published),
        key=lambda i: -probabilities[0, i],
    )[:count]
    out = []
    for column in ranked:
        because = None
        if completed:
            drops = probabilities[0, column] - probabilities[1:, column]
            best = int(np.argmax(drops))
            if drops[best] > 0:
                because = completed[best]
        out.append(
            {
                "course_id": classes[column],
                "title": published[classes[column]],
                "score": round(float(probabilities[0, column]), 6),
                "because_completed": str(because.course_id) if because else None,
                "reason": f"because you completed {titles[str(because.course_id)]}"
                if because
                else "often the next course of learners with a record like yours",
            }
        )
    return out


async def at_risk(kernel: Any, course_id: uuid.UUID, window_days: float, limit: int) -> list[Any]:
    """The course's open enrolments scored by the at-risk model, riskiest first."""
    classes = await _classes(kernel, AT_RISK_MODEL)
    opened = await kernel.db.execute(
        select(Enrolment.user_id)
        .where(Enrolment.course_id == course_id, Enrolment.status == "active")
        .order_by(Enrolment.enrolled_at.desc(), Enrolment.id)
        .limit(limit)
    )
    learners = {row.user_id for row in opened}
    if not learners:
        return []
    records: dict[uuid.UUID, list[Taken]] = {}
    for taken in await enrolments(kernel, users=learners):
        records.setdefault(taken.user_id, []).append(taken)
    open_ = [
        t for r in records.values() for t in r if t.course_id == course_id and t.status == "active"
    ][:limit]
    progress = await early_activity(kernel, [t.id for t in open_])
    features = np.vstack(
        [risk_vector(t, progress[t.id], records[t.user_id], window_days) for t in open_]
    )
    probabilities = await _infer(kernel, AT_RISK_MODEL, features, classes)
    risky = probabilities[:, classes.index("1")]
    scored = [
        {
            "enrolment_id": str(t.id),
            "user_id": str(t.user_id),
            "enrolled_at": t.enrolled_at.isoformat(),
            "risk": round(float(score), 6),
        }
        for t, score in zip(open_, risky, strict=True)
    ]
    return sorted(scored, key=lambda row: -row["risk"])
