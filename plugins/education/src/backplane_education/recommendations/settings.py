"""The recommenders' settings (``[plugins.education.recommendations]``)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class RecommendationSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How many courses a learner is shown and how the at-risk model reads enrolments."""

    count: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    """Most courses ``GET /recommendations`` answers."""
    at_risk_window_days: Annotated[float, msgspec.Meta(gt=0, le=365)] = 7.0
    """The first days of an enrolment the at-risk model reads (at training and scoring)."""
    at_risk_horizon_days: Annotated[float, msgspec.Meta(gt=0, le=3650)] = 30.0
    """An enrolment still open after this many days counts as not completed when training."""
    max_at_risk_listed: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Most enrolments one at-risk listing scores (the riskiest first)."""
