"""Progress of a learner: per lesson (started, completed, time spent, video position and the
fraction watched from player heartbeats, a quiz's best score) and per course (percentage of
required lessons done; complete when every required lesson is, quizzes passed).

:func:`record_quiz_result` is how the plugin's quizzes report an attempt (in their own
transaction); completing a course emits ``education.course_completed`` for other plugins.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backplane import Kernel
from backplane_education.common import EducationError
from backplane_education.models import (
    Course,
    CourseVersion,
    Enrolment,
    Lesson,
    LessonProgress,
    now,
)
from backplane_education.plugin import COMPLETIONS_METER, COURSE_COMPLETED, LESSON_COMPLETED
from backplane_education.settings import EducationSettings

HEARTBEAT_SLACK_S = 1.0
"""Media seconds a heartbeat may advance beyond wall-clock time times the playback rate
(network jitter); a bigger jump is a seek, not watching."""


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What the player reports every few seconds: where it is, and whether it is playing."""

    position_s: Annotated[float, msgspec.Meta(ge=0, le=86400)]
    playing: bool = True
    duration_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None
    """The media's length as the player knows it (used when the lesson declares none)."""


class LessonProgressOut(msgspec.Struct, kw_only=True):
    lesson_id: uuid.UUID
    lesson_key: uuid.UUID
    started_at: datetime
    completed_at: datetime | None
    time_spent_s: float
    position_s: float
    watched_fraction: float
    best_score: float | None
    passed: bool | None


def progress_out(row: LessonProgress) -> LessonProgressOut:
    return LessonProgressOut(
        lesson_id=row.lesson_id,
        lesson_key=row.lesson_key,
        started_at=row.started_at,
        completed_at=row.completed_at,
        time_spent_s=round(row.time_spent_s, 3),
        position_s=row.position_s,
        watched_fraction=round(row.watched_fraction, 4),
        best_score=row.best_score,
        passed=row.passed,
    )


async def enrolment_for(kernel: Kernel, lesson: Lesson, user_id: uuid.UUID) -> Enrolment:
    """The learner's enrolment on the lesson's version (403 when they follow another version
    or are not enrolled)."""
    enrolment = await kernel.db.scalar(
        select(Enrolment).where(
            Enrolment.course_id == lesson.course_id, Enrolment.user_id == user_id
        )
    )
    if enrolment is None or enrolment.status == "unenrolled":
        raise EducationError(403, "enrol in the course first")
    if enrolment.version_id != lesson.version_id:
        raise EducationError(
            403, f"this lesson is not in version {enrolment.version_number}, which you follow"
        )
    return enrolment


async def _rows(kernel: Kernel, enrolment: Enrolment) -> dict[uuid.UUID, LessonProgress]:
    rows = await kernel.db.scalars(
        select(LessonProgress).where(LessonProgress.enrolment_id == enrolment.id)
    )
    return {r.lesson_id: r for r in rows}


async def check_prerequisites(kernel: Kernel, enrolment: Enrolment, lesson: Lesson) -> None:
    if not lesson.prerequisite_keys:
        return
    done = {r.lesson_key for r in (await _rows(kernel, enrolment)).values() if r.completed_at}
    missing = [k for k in lesson.prerequisite_keys if uuid.UUID(k) not in done]
    if missing:
        titles = await kernel.db.scalars(
            select(Lesson.title).where(
                Lesson.version_id == lesson.version_id,
                Lesson.key.in_([uuid.UUID(k) for k in missing]),
            )
        )
        raise EducationError(409, f"complete these lessons first: {', '.join(titles)}")


async def progress_row(kernel: Kernel, enrolment: Enrolment, lesson: Lesson) -> LessonProgress:
    """The learner's row for the lesson, made on first touch (two first touches at once: the
    second finds the first's row)."""
    query = select(LessonProgress).where(
        LessonProgress.enrolment_id == enrolment.id, LessonProgress.lesson_id == lesson.id
    )
    row = await kernel.db.scalar(query)
    if row is not None:
        return row
    row = LessonProgress(
        enrolment_id=enrolment.id,
        course_id=lesson.course_id,
        lesson_id=lesson.id,
        lesson_key=lesson.key,
        user_id=enrolment.user_id,
        time_spent_s=0.0,
        position_s=0.0,
        watched=[],
        watched_fraction=0.0,
    )
    try:
        async with kernel.db.begin_nested():
            kernel.db.add(row)
            await kernel.db.flush()
    except IntegrityError:
        found = await kernel.db.scalar(query)
        if found is None:
            raise
        return found
    return row


def merge_ranges(ranges: list[list[float]], start: float, end: float) -> list[list[float]]:
    """``ranges`` (sorted, disjoint) with ``[start, end]`` added, overlaps merged."""
    merged: list[list[float]] = []
    for low, high in sorted([*ranges, [start, end]]):
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


def covered(ranges: list[list[float]], duration: float) -> float:
    """The fraction of ``[0, duration]`` the ranges cover."""
    seconds = sum(max(0.0, min(high, duration) - max(low, 0.0)) for low, high in ranges)
    return min(1.0, seconds / duration) if duration > 0 else 0.0


async def heartbeat(
    kernel: Kernel, enrolment: Enrolment, lesson: Lesson, beat: Heartbeat
) -> LessonProgress:
    """Advance a video lesson's progress: time spent accrues between heartbeats of a playing
    player (gaps longer than ``heartbeat_max_gap_s`` do not count), and the media seconds
    between two positions count as watched when they could have been played in the wall-clock
    time between them (``max_playback_rate``); a seek forward is no watching. Watching
    ``video_completion_fraction`` of the video completes the lesson."""
    if lesson.kind != "video":
        raise EducationError(409, "heartbeats are for video lessons")
    limits: EducationSettings = kernel.plugin_settings
    row = await progress_row(kernel, enrolment, lesson)
    at = now()
    duration = lesson.duration_s or beat.duration_s
    if duration is not None and beat.position_s > duration + HEARTBEAT_SLACK_S:
        raise EducationError(400, f"position_s is past the video's end ({duration} s)")
    last = row.last_heartbeat_at
    if last is not None and beat.playing:
        elapsed = (at - last).total_seconds()
        if 0 <= elapsed <= limits.heartbeat_max_gap_s:
            row.time_spent_s += elapsed
            advanced = beat.position_s - row.position_s
            if 0 < advanced <= elapsed * limits.max_playback_rate + HEARTBEAT_SLACK_S:
                row.watched = merge_ranges(list(row.watched), row.position_s, beat.position_s)
    row.position_s = beat.position_s
    row.last_heartbeat_at = at
    if duration is not None:
        row.watched_fraction = covered(list(row.watched), duration)
    if row.completed_at is None and row.watched_fraction >= limits.video_completion_fraction:
        await mark_completed(kernel, enrolment, lesson, row)
    await kernel.db.flush()
    return row


async def mark_completed(
    kernel: Kernel, enrolment: Enrolment, lesson: Lesson, row: LessonProgress
) -> None:
    if row.completed_at is not None:
        return
    row.completed_at = now()
    await kernel.db.flush()
    await kernel.events.emit(
        LESSON_COMPLETED,
        {
            "course_id": str(lesson.course_id),
            "lesson_id": str(lesson.id),
            "lesson_key": str(lesson.key),
            "user_id": str(enrolment.user_id),
            "kind": lesson.kind,
        },
    )
    await recompute(kernel, enrolment)


async def complete(kernel: Kernel, enrolment: Enrolment, lesson: Lesson) -> LessonProgress:
    """The learner says they are done with a text, file or link lesson. Videos complete by
    being watched, quizzes by being passed."""
    if lesson.kind == "video":
        raise EducationError(409, "a video lesson completes when it has been watched")
    if lesson.kind == "quiz":
        raise EducationError(409, "a quiz lesson completes when the quiz is passed")
    row = await progress_row(kernel, enrolment, lesson)
    await mark_completed(kernel, enrolment, lesson, row)
    return row


async def record_quiz_result(
    kernel: Kernel, *, lesson_id: uuid.UUID, user_id: uuid.UUID, score: float, passed: bool
) -> None:
    """For the plugin's quizzes: an attempt of ``user_id`` at the quiz of lesson
    ``lesson_id`` scored ``score`` (0..1). The best score is kept; a pass completes the
    lesson (and maybe the course). Runs in the caller's transaction."""
    lesson = await kernel.db.get(Lesson, lesson_id)
    if lesson is None or lesson.kind != "quiz":
        raise EducationError(404, "quiz lesson not found")
    enrolment = await enrolment_for(kernel, lesson, user_id)
    row = await progress_row(kernel, enrolment, lesson)
    row.best_score = score if row.best_score is None else max(row.best_score, score)
    row.passed = bool(row.passed) or passed
    if passed:
        await mark_completed(kernel, enrolment, lesson, row)
    await kernel.db.flush()


async def recompute(kernel: Kernel, enrolment: Enrolment) -> None:
    """The course's percentage for the learner, and its completion (once complete, a course
    stays complete): every required lesson of their version done (quiz lessons are done only
    when passed). Completing meters ``education.completions`` and emits
    ``education.course_completed`` in this transaction."""
    lessons = (
        await kernel.db.scalars(select(Lesson).where(Lesson.version_id == enrolment.version_id))
    ).all()
    counted = [lesson for lesson in lessons if lesson.required] or list(lessons)
    rows = await _rows(kernel, enrolment)
    done = [lesson for lesson in counted if (r := rows.get(lesson.id)) and r.completed_at]
    enrolment.percent = round(100.0 * len(done) / len(counted), 2) if counted else 0.0
    if enrolment.status == "active" and counted and len(done) == len(counted):
        enrolment.status = "completed"
        enrolment.completed_at = now()
        course = await kernel.db.get(Course, enrolment.course_id)
        await kernel.usage.record(
            COMPLETIONS_METER, transaction_id=f"education.completion:{enrolment.id}"
        )
        await kernel.events.emit(
            COURSE_COMPLETED,
            {
                "course_id": str(enrolment.course_id),
                "enrolment_id": str(enrolment.id),
                "user_id": str(enrolment.user_id),
                "version": enrolment.version_number,
                "title": course.title if course is not None else "",
                "completed_at": enrolment.completed_at.isoformat(),
            },
        )
    await kernel.db.flush()


async def carry_progress(kernel: Kernel, enrolment: Enrolment, version: CourseVersion) -> None:
    """Point the learner's progress rows at the lessons of ``version`` with the same keys
    (rows of lessons the version dropped keep pointing at the old ones, and stop counting)."""
    lessons = await kernel.db.scalars(select(Lesson).where(Lesson.version_id == version.id))
    by_key = {lesson.key: lesson.id for lesson in lessons}
    for row in (await _rows(kernel, enrolment)).values():
        if row.lesson_key in by_key:
            row.lesson_id = by_key[row.lesson_key]
    await kernel.db.flush()
