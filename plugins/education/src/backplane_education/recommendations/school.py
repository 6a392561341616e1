"""A synthetic school with real structure, for the recommenders' tests and the demo data.

Courses come in tracks that learners follow in order (a track's popularity differs), with
noise (a learner sometimes takes a course off their track) and dropouts driven by what the
at-risk model is meant to see: each learner's diligence sets their quiz scores and how many
lessons they start in their first week, and those decide whether they complete. Rows go
straight into the plugin's tables (courses, versions, one module of four lessons each, the
first a quiz, enrolments and lesson progress), deterministically for a given ``seed``.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from backplane_education.models import (
    Course,
    CourseModule,
    CourseVersion,
    Enrolment,
    Lesson,
    LessonProgress,
)

LESSONS_PER_COURSE = 4
TRACK_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
"""Share of learners starting each track (popularity is not flat)."""


@dataclass
class School:
    """What :func:`seed_school` made: course ids per track, in order, and the learners."""

    tracks: list[list[uuid.UUID]]
    learners: list[uuid.UUID]
    titles: dict[uuid.UUID, str] = field(default_factory=dict)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _course_rows(rng: random.Random, title: str, now: datetime) -> tuple[uuid.UUID, list[Any]]:
    course_id, version_id, module_id = _uuid(rng), _uuid(rng), _uuid(rng)
    rows: list[Any] = [
        Course(
            id=course_id,
            title=title,
            summary=f"{title}, a course of the synthetic school",
            published_version=1,
            created_at=now - timedelta(days=400),
        ),
        CourseVersion(
            id=version_id, course_id=course_id, number=1, status="published", published_at=now
        ),
        CourseModule(
            id=module_id, course_id=course_id, version_id=version_id, position=0, title="Lessons"
        ),
    ]
    for position in range(LESSONS_PER_COURSE):
        rows.append(
            Lesson(
                id=_uuid(rng),
                key=_uuid(rng),
                course_id=course_id,
                version_id=version_id,
                module_id=module_id,
                position=position,
                kind="quiz" if position == 0 else "text",
                title=f"{title} {position + 1}",
            )
        )
    return course_id, rows


def _take(
    rng: random.Random,
    learner: uuid.UUID,
    course: Course,
    lessons: list[Lesson],
    diligence: float,
    start: datetime,
    now: datetime,
) -> tuple[list[Any], bool, datetime]:
    """One enrolment and its progress; whether it completed, and when it ended. One that
    would end after ``now`` is still open: only what happened before ``now`` is recorded."""
    score = min(max(0.3 + 0.6 * diligence + rng.gauss(0, 0.12), 0.0), 1.0)
    early = 1 + sum(rng.random() < 0.15 + 0.65 * diligence for _ in range(LESSONS_PER_COURSE - 1))
    odds = -4.0 + 4.5 * score + 0.9 * early + rng.gauss(0, 0.6)
    completed = rng.random() < 1 / (1 + math.exp(-odds))
    version = course.published_version
    enrolment = Enrolment(
        id=_uuid(rng),
        course_id=course.id,
        version_id=lessons[0].version_id,
        version_number=version,
        user_id=learner,
        status="completed" if completed else ("unenrolled" if rng.random() < 0.5 else "active"),
        source="self",
        percent=100.0 if completed else 100.0 * early / LESSONS_PER_COURSE / 2,
        enrolled_at=start,
    )
    rows: list[Any] = [enrolment]
    end = start + timedelta(days=rng.uniform(8, 20))
    for lesson in lessons:
        started = start + timedelta(
            days=rng.uniform(0, 6) if lesson.position < early else rng.uniform(7, 18)
        )
        if lesson.position >= early and not completed:
            break
        done = completed or rng.random() < 0.5
        # diligent learners finish a lesson the day they start it, others days later,
        # whatever the outcome: the at-risk model sees tendencies, not the answer
        prompt = rng.random() < 0.3 + 0.6 * diligence
        delay = (
            timedelta(hours=rng.uniform(1, 30)) if prompt else timedelta(days=rng.uniform(2, 12))
        )
        finished = started + delay if done else None
        if started > now:
            break
        rows.append(
            LessonProgress(
                id=_uuid(rng),
                enrolment_id=enrolment.id,
                course_id=course.id,
                lesson_id=lesson.id,
                lesson_key=lesson.key,
                user_id=learner,
                started_at=started,
                completed_at=finished if finished and finished <= now else None,
                time_spent_s=rng.uniform(300, 900) * (0.5 + diligence),
                best_score=score if lesson.kind == "quiz" else None,
                passed=(score >= 0.6) if lesson.kind == "quiz" else None,
            )
        )
    if end > now:  # still under way
        enrolment.status, completed = "active", False
    elif completed:
        enrolment.completed_at = end
    elif enrolment.status == "unenrolled":
        enrolment.unenrolled_at = end
    return rows, completed, end


async def seed_school(
    kernel: Any,
    *,
    learners: int = 300,
    tracks: int = 4,
    courses_per_track: int = 4,
    seed: int = 0,
    now: datetime | None = None,
    noise: float = 0.12,
) -> School:
    """Seed the kernel's tenant with a school (in ``kernel.db``'s transaction; the caller
    commits). Use a different ``seed`` per tenant: ids are drawn from it."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, no secret
    now = now or datetime.now(UTC)
    rows: list[Any] = []
    courses: dict[uuid.UUID, tuple[Course, list[Lesson]]] = {}
    school = School(tracks=[], learners=[])
    for t in range(tracks):
        track = []
        for position in range(courses_per_track):
            title = f"Track {chr(65 + t)} part {position + 1}"
            course_id, made = _course_rows(rng, title, now)
            courses[course_id] = (made[0], [r for r in made if isinstance(r, Lesson)])
            rows.extend(made)
            track.append(course_id)
            school.titles[course_id] = title
        school.tracks.append(track)
    weights = [TRACK_WEIGHTS[t % len(TRACK_WEIGHTS)] for t in range(tracks)]
    everything = list(courses)
    for _ in range(learners):
        learner, diligence = _uuid(rng), rng.random()
        school.learners.append(learner)
        chosen = rng.choices(range(tracks), weights)[0]
        position = 1 if rng.random() < 0.15 else 0
        when = now - timedelta(days=rng.uniform(20, 300))
        taken: set[uuid.UUID] = set()
        while position < courses_per_track and when < now:
            course_id = school.tracks[chosen][position]
            if rng.random() < noise:  # off the track this time
                course_id = rng.choice([c for c in everything if c not in taken])
            else:
                position += 1
            if course_id in taken:
                break
            taken.add(course_id)
            course, lessons = courses[course_id]
            made, completed, when = _take(rng, learner, course, lessons, diligence, when, now)
            rows.extend(made)
            if not completed and rng.random() < 0.6:  # most who fail a course stop
                break
            when += timedelta(days=rng.uniform(0, 5))
    # parents before children: the tables have foreign keys but the models no relationships
    for kind in (Course, CourseVersion, CourseModule, Lesson, Enrolment, LessonProgress):
        kernel.db.add_all([row for row in rows if type(row) is kind])
        await kernel.db.flush()
    return school


async def record_completions(
    kernel: Any, user_id: uuid.UUID, course_ids: list[uuid.UUID], now: datetime | None = None
) -> None:
    """Give ``user_id`` completed enrolments in ``course_ids``, in that order, a fortnight
    apart and ending before ``now`` (a demo learner's record)."""
    now = now or datetime.now(UTC)
    for index, course_id in enumerate(course_ids):
        version = await kernel.db.scalar(
            select(CourseVersion).where(
                CourseVersion.course_id == course_id, CourseVersion.status == "published"
            )
        )
        assert version is not None, f"course {course_id} has no published version"
        start = now - timedelta(days=14 * (len(course_ids) - index) + 7)
        kernel.db.add(
            Enrolment(
                course_id=course_id,
                version_id=version.id,
                version_number=version.number,
                user_id=user_id,
                status="completed",
                source="self",
                percent=100.0,
                enrolled_at=start,
                completed_at=start + timedelta(days=10),
            )
        )
    await kernel.db.flush()


__all__ = ["School", "record_completions", "seed_school"]
