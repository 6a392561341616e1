"""The plugin's settings: ``[plugins.education]`` in the TOML file or
``BACKPLANE_PLUGIN__EDUCATION__<FIELD>`` variables, validated when the kernel starts."""

from __future__ import annotations

from typing import Annotated

import msgspec

from backplane_education.quizzes.settings import QuizSettings
from backplane_education.recommendations.settings import RecommendationSettings
from backplane_education.xapi.settings import XapiSettings

KIB = 1024


class EducationSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits on what one request may send or build; every breach is a clear 4xx naming the
    setting."""

    max_markdown_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 256 * KIB
    """Largest Markdown body of a text lesson."""
    max_lessons_per_version: Annotated[int, msgspec.Meta(ge=1)] = 500
    """Most lessons one course version may hold."""
    max_modules_per_version: Annotated[int, msgspec.Meta(ge=1)] = 100
    """Most modules one course version may hold."""
    max_bulk_csv_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1024 * KIB
    """Largest CSV a bulk enrolment may upload."""
    max_bulk_rows: Annotated[int, msgspec.Meta(ge=1)] = 5000
    """Most rows one bulk enrolment may hold."""
    heartbeat_max_gap_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """Longest gap between two player heartbeats still counted as time spent (a paused or
    closed player does not accrue time)."""
    video_completion_fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
    """Fraction of a video watched (distinct seconds) that completes its lesson."""
    signed_url_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 900
    """Lifetime of the signed URLs a video or file lesson hands its player."""
    catalogue_page_size: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    """Most courses one catalogue page lists."""
    quizzes: QuizSettings = msgspec.field(default_factory=QuizSettings)
    """Limits of the quizzes (``[plugins.education.quizzes]``; see QUIZZES.md)."""
    max_playback_rate: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 2.0
    """Fastest playback a player offers: media seconds between two heartbeats count as
    watched only if they fit in the wall-clock time between them at this rate."""
    xapi: XapiSettings = msgspec.field(default_factory=XapiSettings)
    """The xAPI record store's limits (``[plugins.education.xapi]``)."""
    certificate_template: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = (
        "Certificate of completion"
    )
    """The documents-plugin template (by name) a completed course's certificate is rendered
    from, unless the course names its own: it is given ``recipient`` (the learner's address),
    ``course`` (its title) and ``completed_on`` (a date), as the documents plugin's demo
    "Certificate of completion" expects."""
    recommendations: RecommendationSettings = msgspec.field(default_factory=RecommendationSettings)
    """The recommenders' settings (``[plugins.education.recommendations]``)."""
