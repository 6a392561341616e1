"""Limits of the quizzes (``[plugins.education.quizzes]`` in the TOML file,
``BACKPLANE_PLUGIN__EDUCATION__QUIZZES__<FIELD>`` in the environment, when the education
settings nest them; defaults otherwise)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class QuizSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_questions_per_bank: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 2000
    """Questions one bank may hold (adding one more: 409 naming this setting)."""
    max_questions_per_quiz: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 200
    """Questions one attempt may draw (a quiz drawing more: 400 naming this setting)."""
    time_grace_s: Annotated[float, msgspec.Meta(ge=0, le=120)] = 2.0
    """Seconds past an attempt's deadline still accepted for answers in flight (network
    latency); later answers are refused and a submit is graded as of the deadline."""
