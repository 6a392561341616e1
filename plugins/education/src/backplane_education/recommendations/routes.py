"""``GET /recommendations`` (the caller's next courses, explained) and
``GET /courses/{id}/at-risk`` (the course's open enrolments by risk of not completing, for its
instructors and education managers)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from backplane import Kernel, requires
from backplane_education.common import ERROR_HANDLERS, TAGS, learner_id, require_teacher
from backplane_education.courses import find_course
from backplane_education.plugin import LEARN, TEACH
from backplane_education.recommendations.serving import at_risk, recommend


class Recommendation(msgspec.Struct, kw_only=True):
    course_id: uuid.UUID
    title: str
    score: float
    """The model's probability that this is the learner's next course."""
    because_completed: uuid.UUID | None
    """The completed course that weighs most for this recommendation (None: none does)."""
    reason: str


class AtRiskLearner(msgspec.Struct, kw_only=True):
    enrolment_id: uuid.UUID
    user_id: uuid.UUID
    enrolled_at: str
    risk: float
    """The model's probability that this enrolment will not complete."""


def _settings(kernel: Kernel) -> Any:
    return kernel.plugin_settings.recommendations


class RecommendationsController(Controller):
    path = "/"
    tags = TAGS
    exception_handlers = ERROR_HANDLERS

    @get(
        "/recommendations",
        guards=[requires(LEARN)],
        summary="The caller's next courses, learnt from the tenant's learners, explained",
    )
    async def recommendations(self, kernel: NamedDependency[Kernel]) -> list[Recommendation]:
        found = await recommend(kernel, learner_id(kernel), _settings(kernel).count)
        return msgspec.convert(found, list[Recommendation])

    @get(
        "/courses/{course_id:uuid}/at-risk",
        guards=[requires(TEACH)],
        summary="The course's open enrolments, riskiest of not completing first",
    )
    async def at_risk(
        self, course_id: FromPath[uuid.UUID], kernel: NamedDependency[Kernel]
    ) -> list[AtRiskLearner]:
        await find_course(kernel.db, course_id)
        await require_teacher(kernel, course_id)
        settings = _settings(kernel)
        found = await at_risk(
            kernel, course_id, settings.at_risk_window_days, settings.max_at_risk_listed
        )
        return msgspec.convert(found, list[AtRiskLearner])
