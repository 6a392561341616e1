"""From an instructor's question to the learner's view of it in one attempt.

Only texts and tokens are copied across; the function builds the learner struct field by field
from what may be shown, so nothing of the key can ride along.
"""

from __future__ import annotations

from typing import Any

from backplane_education.quizzes.learner import (
    MatchingView,
    MultipleChoiceView,
    NumericView,
    Option,
    OrderingView,
    QuestionView,
    ShortAnswerView,
    SingleChoiceView,
    TrueFalseView,
)
from backplane_education.quizzes.questions import (
    Matching,
    MultipleChoice,
    Numeric,
    Ordering,
    Question,
    ShortAnswer,
    SingleChoice,
    TrueFalse,
)
from backplane_education.quizzes.selection import Layout, layout


def _options(texts: list[str], shape: Layout, side: str) -> list[Option]:
    return [
        Option(id=shape.token_of(side, index), text=texts[index]) for index in shape.order[side]
    ]


def present(  # noqa: PLR0911
    question: Question, seed: int, position: int, *, shuffle_options: bool = True
) -> QuestionView:
    """The learner's view of ``question`` at ``position`` of the attempt with ``seed``."""
    shape = layout(question, seed, position, shuffle_options=shuffle_options)
    common: dict[str, Any] = {
        "position": position,
        "prompt": question.prompt,
        "points": question.points,
    }
    if isinstance(question, SingleChoice):
        texts = [choice.text for choice in question.choices]
        return SingleChoiceView(**common, options=_options(texts, shape, "c"))
    if isinstance(question, MultipleChoice):
        texts = [choice.text for choice in question.choices]
        return MultipleChoiceView(**common, options=_options(texts, shape, "c"))
    if isinstance(question, TrueFalse):
        return TrueFalseView(**common)
    if isinstance(question, Numeric):
        return NumericView(**common)
    if isinstance(question, ShortAnswer):
        return ShortAnswerView(**common)
    if isinstance(question, Ordering):
        return OrderingView(**common, items=_options(question.items, shape, "i"))
    if isinstance(question, Matching):
        lefts = [pair.left for pair in question.pairs]
        rights = [pair.right for pair in question.pairs] + question.distractors
        return MatchingView(
            **common, left=_options(lefts, shape, "l"), right=_options(rights, shape, "r")
        )
    raise TypeError(f"unknown question type {type(question).__name__}")
