"""The demo tenant's quiz (``backplane demo seed``): a bank with a question of several types
and a published quiz drawing four of them per attempt, so that ``make run`` shows a learner's
attempt, grading and feedback at once."""

from __future__ import annotations

from typing import Any

import msgspec

from backplane_education.quizzes.authoring import add_question, create_bank, save_quiz
from backplane_education.quizzes.declarations import quiz_settings
from backplane_education.quizzes.questions import Question
from backplane_education.quizzes.schemas import BankIn, DrawIn, QuizIn

QUESTIONS: list[dict[str, Any]] = [
    {
        "type": "single",
        "prompt": "What keeps one tenant's rows from another's on PostgreSQL?",
        "choices": [
            {"text": "Row-level security", "correct": True, "feedback": "Enforced twice."},
            {"text": "A schema per tenant", "feedback": "Rejected: migrations fan out."},
            {"text": "Nothing"},
        ],
    },
    {
        "type": "multiple",
        "prompt": "Which are the kernel's own concerns?",
        "choices": [
            {"text": "Identity", "correct": True},
            {"text": "Billing", "correct": True},
            {"text": "Document templates"},
        ],
    },
    {"type": "true_false", "prompt": "Plugins may import kernel internals.", "answer": False},
    {
        "type": "short_text",
        "prompt": "Which library do the kernel's hooks use?",
        "accepted": ["pluggy"],
        "feedback": {"incorrect": "The one pytest uses."},
    },
    {
        "type": "ordering",
        "prompt": "Order a request's path",
        "items": ["authentication", "tenant resolution", "handler", "commit"],
    },
]


async def seed(kernel: Any) -> dict[str, str]:
    limits = quiz_settings(kernel)
    bank = await create_bank(kernel.db, BankIn(name="Backplane basics"), None)
    for raw in QUESTIONS:
        question: Question = msgspec.convert(raw, type=Question)
        await add_question(kernel.db, bank, question, None, limits)
    quiz = QuizIn(
        title="Backplane basics check",
        draws=[DrawIn(bank_id=bank.id, count=4)],
        time_limit_s=600,
        max_attempts=3,
        passing_score=70,
        published=True,
    )
    await save_quiz(kernel.db, None, quiz, None, limits)
    start = "POST /api/education/learn/quizzes/{id}/attempts"
    return {"quizzes": f"GET /api/education/quizzes, then {start}"}
