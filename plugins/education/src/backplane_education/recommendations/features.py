"""Features of both recommenders, read from the plugin's own tables, the same at training and
at serving time (one function each, so the two never drift apart).

Next course: a learner's history before an enrolment as hashed one-hot blocks of course ids
(courses completed, courses left unfinished, the last course enrolled in, the last completed;
``HASH_BUCKETS`` buckets each, so a tenant's model has a fixed width whatever its catalogue),
then their mean best quiz score and how many courses they completed and left.

At risk: an enrolment's first ``window_days`` (lessons started and completed, hours spent,
mean best quiz score and whether there is one) and the learner's record before it (courses
completed, courses left).
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from backplane_education.models import Enrolment, LessonProgress

HASH_BUCKETS = 128
NEXT_COURSE_FEATURES = 4 * HASH_BUCKETS + 3
AT_RISK_FEATURES = 7


def bucket(course_id: uuid.UUID) -> int:
    """A course's column in each hashed block (stable across processes)."""
    return zlib.crc32(course_id.bytes) % HASH_BUCKETS


@dataclass
class Taken:
    """One enrolment as the features see it."""

    id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    enrolled_at: datetime
    completed_at: datetime | None
    quiz_score: float | None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def enrolments(
    kernel: Any, user_id: uuid.UUID | None = None, *, users: set[uuid.UUID] | None = None
) -> list[Taken]:
    """The tenant's enrolments (or one learner's, or those of ``users``), by learner and
    oldest first, with each one's mean best quiz score (None without a graded quiz)."""
    query = select(
        Enrolment.id,
        Enrolment.course_id,
        Enrolment.user_id,
        Enrolment.status,
        Enrolment.enrolled_at,
        Enrolment.completed_at,
    ).order_by(Enrolment.user_id, Enrolment.enrolled_at, Enrolment.id)
    scores = select(LessonProgress.enrolment_id, LessonProgress.best_score).where(
        LessonProgress.best_score.is_not(None)
    )
    if user_id is not None:
        query = query.where(Enrolment.user_id == user_id)
        scores = scores.where(LessonProgress.user_id == user_id)
    if users is not None:
        query = query.where(Enrolment.user_id.in_(list(users)))
        scores = scores.where(LessonProgress.user_id.in_(list(users)))
    by_enrolment: dict[uuid.UUID, list[float]] = defaultdict(list)
    for enrolment_id, score in await kernel.db.execute(scores):
        by_enrolment[enrolment_id].append(float(score))
    return [
        Taken(
            id=row.id,
            course_id=row.course_id,
            user_id=row.user_id,
            status=row.status,
            enrolled_at=_aware(row.enrolled_at),
            completed_at=_aware(row.completed_at) if row.completed_at else None,
            quiz_score=float(np.mean(by_enrolment[row.id])) if by_enrolment[row.id] else None,
        )
        for row in await kernel.db.execute(query)
    ]


def history_vector(history: list[Taken], before: datetime | None = None) -> np.ndarray[Any, Any]:
    """The next-course features of a learner whose enrolments so far are ``history`` (oldest
    first); completions after ``before`` are not known yet at that time."""
    vector = np.zeros(NEXT_COURSE_FEATURES, np.float32)
    scores, completed, left = [], 0, 0
    last_completed: Taken | None = None
    for taken in history:
        done = taken.completed_at is not None and (before is None or taken.completed_at <= before)
        if done:
            vector[bucket(taken.course_id)] = 1.0
            completed += 1
            last_completed = taken
        else:
            vector[HASH_BUCKETS + bucket(taken.course_id)] = 1.0
            left += 1
        if taken.quiz_score is not None:
            scores.append(taken.quiz_score)
    if history:
        vector[2 * HASH_BUCKETS + bucket(history[-1].course_id)] = 1.0
    if last_completed is not None:
        vector[3 * HASH_BUCKETS + bucket(last_completed.course_id)] = 1.0
    vector[4 * HASH_BUCKETS :] = (float(np.mean(scores)) if scores else 0.0, completed, left)
    return vector


def by_learner(rows: list[Taken]) -> dict[uuid.UUID, list[Taken]]:
    grouped: dict[uuid.UUID, list[Taken]] = defaultdict(list)
    for row in rows:
        grouped[row.user_id].append(row)
    return grouped


async def early_activity(
    kernel: Any, enrolment_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[datetime, datetime | None, float, float | None]]]:
    """Each enrolment's lesson progress: started, completed, seconds spent, best score."""
    found: dict[uuid.UUID, list[tuple[datetime, datetime | None, float, float | None]]] = (
        defaultdict(list)
    )
    for start in range(0, len(enrolment_ids), 500):
        chunk = enrolment_ids[start : start + 500]
        rows = await kernel.db.execute(
            select(
                LessonProgress.enrolment_id,
                LessonProgress.started_at,
                LessonProgress.completed_at,
                LessonProgress.time_spent_s,
                LessonProgress.best_score,
            ).where(LessonProgress.enrolment_id.in_(chunk))
        )
        for row in rows:
            done = _aware(row.completed_at) if row.completed_at else None
            found[row.enrolment_id].append(
                (_aware(row.started_at), done, float(row.time_spent_s), row.best_score)
            )
    return found


def risk_vector(
    taken: Taken,
    progress: list[tuple[datetime, datetime | None, float, float | None]],
    earlier: list[Taken],
    window_days: float,
) -> np.ndarray[Any, Any]:
    """The at-risk features of one enrolment: its first ``window_days`` and the learner's
    record before it."""
    end = taken.enrolled_at + timedelta(days=window_days)
    early = [p for p in progress if p[0] <= end]
    scores = [p[3] for p in early if p[3] is not None]
    before = [e for e in earlier if e.enrolled_at < taken.enrolled_at]
    done_before = sum(
        e.completed_at is not None and e.completed_at <= taken.enrolled_at for e in before
    )
    return np.array(
        [
            len(early),
            sum(p[1] is not None and p[1] <= end for p in early),
            sum(p[2] for p in early) / 3600.0,
            float(np.mean(scores)) if scores else 0.0,
            1.0 if scores else 0.0,
            done_before,
            len(before) - done_before,
        ],
        np.float32,
    )
