"""The quizzes' permission codes and the way handlers reach their limits."""

from __future__ import annotations

from typing import Any

from backplane import Meter, Permission
from backplane_education.quizzes.settings import QuizSettings

QUIZZES_MANAGE = "education.quizzes.manage"
"""Write question banks and quizzes, read keys and every learner's attempts."""
QUIZZES_TAKE = "education.learn"
"""Take published quizzes and read one's own attempts (as a user, not an API key): the
plugin's learning permission, declared with the courses."""
ATTEMPTS_METER = "education.quiz_attempts"
"""One per attempt started."""

PERMISSIONS = (
    Permission(
        code=QUIZZES_MANAGE,
        roles=("owner", "admin"),
        description="Write question banks and quizzes; read answer keys and all attempts",
    ),
)

METERS = (
    Meter(
        code=ATTEMPTS_METER,
        unit="attempt",
        aggregation="count",
        description="Quiz attempts started by learners",
    ),
)


def quiz_settings(kernel: Any) -> QuizSettings:
    """The quizzes' limits: the ``quizzes`` section of the plugin's settings."""
    found = getattr(kernel.plugin_settings, "quizzes", None)
    return found if isinstance(found, QuizSettings) else QuizSettings()
