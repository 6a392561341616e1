"""Every quiz controller, for ``register_routes``."""

from __future__ import annotations

from backplane_education.quizzes.routes_authoring import (
    QuestionBanksController,
    QuestionsController,
    QuizzesController,
)
from backplane_education.quizzes.routes_learning import LearnerQuizzesController

CONTROLLERS = (
    QuestionBanksController,
    QuestionsController,
    QuizzesController,
    LearnerQuizzesController,
)
