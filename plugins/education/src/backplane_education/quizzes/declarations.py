"""What the quizzes declare to the kernel (permissions, meters, event types) and the way
handlers reach their limits."""

from __future__ import annotations

from typing import Any

from backplane import EventType, Meter, Permission
from backplane_education.quizzes.settings import QuizSettings

QUIZZES_MANAGE = "education.quizzes.manage"
"""Write question banks and quizzes, read keys and every learner's attempts."""
QUIZZES_TAKE = "education.learn"
"""Take published quizzes and read one's own attempts (as a user, not an API key): the
plugin's learning permission, declared with the courses."""
ATTEMPTS_METER = "education.quiz_attempts"
"""One per attempt started."""
ATTEMPT_CLOSED = "education.quiz_attempt_closed"
"""An attempt was graded (submitted, or closed at its deadline). Data: ``quiz_id``,
``attempt_id``, ``user_id``, ``number``, ``status``, ``late``, ``percent``,
``passed`` — for progress (a passed quiz lesson) and for xAPI statements (passed / failed)."""

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

EVENT_TYPES = (
    EventType(
        name=ATTEMPT_CLOSED,
        description="A quiz attempt was graded (submitted or timed out): score and pass",
    ),
)


def quiz_settings(kernel: Any) -> QuizSettings:
    """The quizzes' limits: the ``quizzes`` section of the plugin's settings."""
    found = getattr(kernel.plugin_settings, "quizzes", None)
    return found if isinstance(found, QuizSettings) else QuizSettings()
