"""What a learner sees of a question, and what they send back.

The learner's structs are separate types, not the instructor's with fields removed: none of
them has a field that could hold a key (no ``correct``, ``answer``, ``accepted``, no pairs).
Options are named by per-attempt tokens (``option_token``) so that "the answer is b" cannot be
passed between attempts or learners, and the order of options is drawn per attempt.
"""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

Token = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """A choice, an item to order, or one side of a match: a token to answer with, a text."""

    id: str
    text: str


class _View(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    position: int
    """Where the question sits in this attempt (0-based); answers name it."""
    prompt: str
    points: float


class SingleChoiceView(_View, frozen=True, tag="single"):
    options: list[Option]


class MultipleChoiceView(_View, frozen=True, tag="multiple"):
    options: list[Option]


class TrueFalseView(_View, frozen=True, tag="true_false"):
    pass


class NumericView(_View, frozen=True, tag="numeric"):
    pass


class ShortAnswerView(_View, frozen=True, tag="short_text"):
    pass


class OrderingView(_View, frozen=True, tag="ordering"):
    items: list[Option]
    """Never shown in the correct order."""


class MatchingView(_View, frozen=True, tag="matching"):
    left: list[Option]
    right: list[Option]


QuestionView = (
    SingleChoiceView
    | MultipleChoiceView
    | TrueFalseView
    | NumericView
    | ShortAnswerView
    | OrderingView
    | MatchingView
)
"""A question as a learner sees it during an attempt."""


class _Answer(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="type"
):
    pass


class SingleChoiceAnswer(_Answer, frozen=True, tag="single"):
    choice: Token


class MultipleChoiceAnswer(_Answer, frozen=True, tag="multiple"):
    choices: Annotated[list[Token], msgspec.Meta(max_length=20)]


class TrueFalseAnswer(_Answer, frozen=True, tag="true_false"):
    value: bool


class NumericAnswer(_Answer, frozen=True, tag="numeric"):
    value: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError("value must be a finite number")


class ShortAnswerAnswer(_Answer, frozen=True, tag="short_text"):
    text: Annotated[str, msgspec.Meta(max_length=1000)]


class OrderingAnswer(_Answer, frozen=True, tag="ordering"):
    order: Annotated[list[Token], msgspec.Meta(max_length=20)]


class MatchingAnswer(_Answer, frozen=True, tag="matching"):
    matches: Annotated[dict[Token, Token], msgspec.Meta(max_length=20)]
    """Left token → right token; lefts left out count as wrong."""


Answer = (
    SingleChoiceAnswer
    | MultipleChoiceAnswer
    | TrueFalseAnswer
    | NumericAnswer
    | ShortAnswerAnswer
    | OrderingAnswer
    | MatchingAnswer
)
"""A learner's answer to one question, of the question's ``type``."""
