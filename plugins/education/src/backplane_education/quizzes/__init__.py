"""Quizzes: question banks, quizzes drawn from them per attempt, and automatic grading.

The pure engine — question types (``questions``), the learner's view that cannot carry a key
(``learner``, ``presenting``), seeded per-attempt draws (``selection``) and grading
(``grading``) — knows nothing of the database or HTTP; the tables, services and routes build on
it.
"""

from backplane_education.quizzes.grading import (
    AnswerError,
    QuestionResult,
    Score,
    check_answer,
    grade,
    total,
)
from backplane_education.quizzes.learner import Answer, QuestionView
from backplane_education.quizzes.presenting import present
from backplane_education.quizzes.questions import Question, decode_question
from backplane_education.quizzes.selection import Draw, draw_paper, new_seed

__all__ = [
    "Answer",
    "AnswerError",
    "Draw",
    "Question",
    "QuestionResult",
    "QuestionView",
    "Score",
    "check_answer",
    "decode_question",
    "draw_paper",
    "grade",
    "new_seed",
    "present",
    "total",
]
