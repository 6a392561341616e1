"""Questions as instructors write them: each type is a msgspec struct tagged by ``type``, and
``Question`` is their union, so a body decodes straight into the right type or fails with a
message naming the field.

These structs carry the answer key (``correct`` flags, ``answer``, ``accepted``, the order of
``items``, the ``pairs``). They are for instructors and for the grader only: what a learner sees
is built from them in ``learner.py`` as *different* structs that have no field able to hold a
key, so a key cannot reach a learner by a forgotten ``exclude``.
"""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
FeedbackText = Annotated[str, msgspec.Meta(max_length=2000)]
Points = Annotated[float, msgspec.Meta(gt=0, le=1000)]


class Feedback(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the learner reads after submitting, by how their answer fared."""

    correct: FeedbackText = ""
    partial: FeedbackText = ""
    incorrect: FeedbackText = ""


class Choice(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One option of a choice question; ``feedback`` is shown when the learner picked it."""

    text: Text
    correct: bool = False
    feedback: FeedbackText = ""


class MatchPair(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    left: ShortText
    right: ShortText


class _Base(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="type"
):
    prompt: Text
    points: Points = 1.0
    feedback: Feedback = msgspec.field(default_factory=Feedback)


def _distinct(values: list[str], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be distinct")


class SingleChoice(_Base, frozen=True, tag="single"):
    """Exactly one correct choice; all or nothing."""

    choices: Annotated[list[Choice], msgspec.Meta(min_length=2, max_length=20)]

    def __post_init__(self) -> None:
        _distinct([choice.text for choice in self.choices], "choice texts")
        if sum(choice.correct for choice in self.choices) != 1:
            raise ValueError("a single-choice question needs exactly one correct choice")


class MultipleChoice(_Base, frozen=True, tag="multiple"):
    """One or more correct choices. With ``partial_credit`` the score is (correct picked -
    wrong picked) / correct choices, never below 0; without, only the exact set scores."""

    choices: Annotated[list[Choice], msgspec.Meta(min_length=2, max_length=20)]
    partial_credit: bool = True

    def __post_init__(self) -> None:
        _distinct([choice.text for choice in self.choices], "choice texts")
        if not any(choice.correct for choice in self.choices):
            raise ValueError("a multiple-choice question needs at least one correct choice")


class TrueFalse(_Base, frozen=True, tag="true_false"):
    answer: bool


class Numeric(_Base, frozen=True, tag="numeric"):
    """Correct when ``|value - answer| <= tolerance`` (absolute); all or nothing."""

    answer: float
    tolerance: Annotated[float, msgspec.Meta(ge=0)] = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.answer) and math.isfinite(self.tolerance)):
            raise ValueError("answer and tolerance must be finite numbers")


class ShortAnswer(_Base, frozen=True, tag="short_text"):
    """Correct when the text equals one accepted answer after Unicode normalisation (NFKC),
    trimming and collapsing whitespace, and — unless ``case_sensitive`` — case folding."""

    accepted: Annotated[list[ShortText], msgspec.Meta(min_length=1, max_length=50)]
    case_sensitive: bool = False


class Ordering(_Base, frozen=True, tag="ordering"):
    """``items`` in their correct order. With ``partial_credit`` the score is the share of
    items the learner put at their correct position; without, only the exact order scores."""

    items: Annotated[list[ShortText], msgspec.Meta(min_length=2, max_length=20)]
    partial_credit: bool = True

    def __post_init__(self) -> None:
        _distinct(self.items, "items")


class Matching(_Base, frozen=True, tag="matching"):
    """Each left matches its right. ``distractors`` are extra rights that match nothing.
    With ``partial_credit`` the score is the share of lefts matched right; without, all or
    nothing."""

    pairs: Annotated[list[MatchPair], msgspec.Meta(min_length=2, max_length=20)]
    distractors: Annotated[list[ShortText], msgspec.Meta(max_length=20)] = []
    partial_credit: bool = True

    def __post_init__(self) -> None:
        _distinct([pair.left for pair in self.pairs], "left items")
        _distinct([pair.right for pair in self.pairs] + self.distractors, "right items")


Question = SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortAnswer | Ordering | Matching
"""Any question, told apart by its ``type`` field."""

QUESTION_TYPES = (
    "single",
    "multiple",
    "true_false",
    "numeric",
    "short_text",
    "ordering",
    "matching",
)


def decode_question(raw: bytes | str) -> Question:
    """Decode one question from JSON; ``msgspec.ValidationError`` names what is wrong."""
    return msgspec.json.decode(raw, type=Question)


def question_from_builtins(value: object) -> Question:
    """A question from stored JSON (a database column), validated like a request body."""
    question: Question = msgspec.convert(value, type=Question)
    return question
