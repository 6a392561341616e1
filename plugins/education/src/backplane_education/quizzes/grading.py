"""Checking and grading a learner's answers.

``check_answer`` runs when an answer is saved: an answer of the wrong type or naming tokens the
question does not have is the learner's mistake (a 400), not a wrong answer. ``grade`` runs on
submit and gives each question a score in [0, 1] by these rules (also in the README):

- single choice, true/false, numeric (within ``tolerance``), short text (one accepted answer,
  normalised): all or nothing;
- multiple choice: with ``partial_credit``, (correct picked - wrong picked) / correct choices,
  floored at 0 — picking everything scores 0 when half the choices are wrong; without, 1 only
  for exactly the correct set;
- ordering: with ``partial_credit``, the share of items at their correct position; without,
  1 only for the exact order;
- matching: with ``partial_credit``, the share of lefts matched to their right (a distractor
  is always wrong); without, 1 only when every left is matched right;
- an unanswered question scores 0.

Points awarded are ``score * points``; the attempt's percentage is awarded / possible * 100.
Feedback is the question's text for the outcome plus the feedback of each choice picked; the
result never states the correct answer.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Literal

import msgspec

from backplane_education.quizzes.learner import (
    Answer,
    MatchingAnswer,
    MultipleChoiceAnswer,
    NumericAnswer,
    OrderingAnswer,
    ShortAnswerAnswer,
    SingleChoiceAnswer,
    TrueFalseAnswer,
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

Outcome = Literal["correct", "partial", "incorrect", "unanswered"]


class AnswerError(ValueError):
    """The answer does not fit its question (wrong type, unknown or repeated option)."""


class QuestionResult(msgspec.Struct, frozen=True, kw_only=True):
    """How one question of an attempt was graded — safe to show the learner."""

    position: int
    outcome: Outcome
    score: float
    points_awarded: float
    points_possible: float
    feedback: list[str]


def _tag(value: Question | Answer) -> str:
    return str(type(value).__struct_config__.tag)


def _tokens(shape: Layout, side: str, given: list[str]) -> list[int]:
    index = shape.index_of(side)
    unknown = [token for token in given if token not in index]
    if unknown:
        raise AnswerError(f"unknown option {unknown[0]!r}")
    if len(set(given)) != len(given):
        raise AnswerError("an option is named twice")
    return [index[token] for token in given]


def check_answer(
    question: Question, answer: Answer, seed: int, position: int, *, shuffle_options: bool
) -> None:
    """Raise ``AnswerError`` unless ``answer`` is a well-formed answer to ``question``."""
    if _tag(question) != _tag(answer):
        raise AnswerError(f"question {position} takes an answer of type {_tag(question)!r}")
    _indexes(question, answer, layout(question, seed, position, shuffle_options=shuffle_options))


def _indexes(question: Question, answer: Answer, shape: Layout) -> list[int] | dict[int, int]:
    """The answer's tokens as authored indexes (empty for questions without options)."""
    if isinstance(answer, SingleChoiceAnswer):
        return _tokens(shape, "c", [answer.choice])
    if isinstance(answer, MultipleChoiceAnswer):
        return _tokens(shape, "c", answer.choices)
    if isinstance(answer, OrderingAnswer):
        picked = _tokens(shape, "i", answer.order)
        if len(picked) != len(shape.tokens["i"]):
            raise AnswerError("an ordering answer must place every item")
        return picked
    if isinstance(answer, MatchingAnswer):
        lefts = _tokens(shape, "l", list(answer.matches))
        rights = _tokens(shape, "r", list(answer.matches.values()))
        return dict(zip(lefts, rights, strict=True))
    return []


def normalise(text: str, *, case_sensitive: bool) -> str:
    """How short answers are compared: NFKC, trimmed, inner whitespace collapsed, case folded
    unless the question is case sensitive."""
    folded = " ".join(unicodedata.normalize("NFKC", text).split())
    return folded if case_sensitive else folded.casefold()


def _score(question: Question, answer: Answer, shape: Layout) -> float:  # noqa: PLR0911
    picked = _indexes(question, answer, shape)
    if isinstance(question, SingleChoice):
        assert isinstance(picked, list)
        return 1.0 if question.choices[picked[0]].correct else 0.0
    if isinstance(question, MultipleChoice):
        assert isinstance(picked, list)
        right = {i for i, choice in enumerate(question.choices) if choice.correct}
        if not question.partial_credit:
            return 1.0 if set(picked) == right else 0.0
        hits = sum(1 for i in picked if i in right)
        return max(0.0, (hits - (len(picked) - hits)) / len(right))
    if isinstance(question, TrueFalse):
        assert isinstance(answer, TrueFalseAnswer)
        return 1.0 if answer.value is question.answer else 0.0
    if isinstance(question, Numeric):
        assert isinstance(answer, NumericAnswer)
        slack = question.tolerance + 1e-9 * max(1.0, abs(question.answer))
        return 1.0 if math.fabs(answer.value - question.answer) <= slack else 0.0
    if isinstance(question, ShortAnswer):
        assert isinstance(answer, ShortAnswerAnswer)
        given = normalise(answer.text, case_sensitive=question.case_sensitive)
        accepted = {normalise(a, case_sensitive=question.case_sensitive) for a in question.accepted}
        return 1.0 if given in accepted else 0.0
    if isinstance(question, Ordering):
        assert isinstance(picked, list)
        placed = sum(1 for position, index in enumerate(picked) if position == index)
        if not question.partial_credit:
            return 1.0 if placed == len(picked) else 0.0
        return placed / len(question.items)
    if isinstance(question, Matching):
        assert isinstance(picked, dict)
        matched = sum(1 for left, right in picked.items() if left == right)
        if not question.partial_credit:
            return 1.0 if matched == len(question.pairs) else 0.0
        return matched / len(question.pairs)
    raise TypeError(f"unknown question type {type(question).__name__}")


def grade(
    question: Question,
    answer: Answer | None,
    seed: int,
    position: int,
    *,
    shuffle_options: bool,
) -> QuestionResult:
    """Grade one question of an attempt (``answer`` None: unanswered). An answer that no
    longer fits (``AnswerError``) grades as incorrect rather than failing the submit."""
    shape = layout(question, seed, position, shuffle_options=shuffle_options)
    score = 0.0
    if answer is not None:
        try:
            score = _score(question, answer, shape) if _tag(question) == _tag(answer) else 0.0
        except AnswerError:
            score = 0.0
    outcome: Outcome = (
        "unanswered"
        if answer is None
        else "correct"
        if score >= 1.0
        else "partial"
        if score > 0
        else "incorrect"
    )
    feedback = _feedback(question, answer, shape, outcome)
    return QuestionResult(
        position=position,
        outcome=outcome,
        score=round(score, 6),
        points_awarded=round(score * question.points, 6),
        points_possible=question.points,
        feedback=feedback,
    )


def _feedback(
    question: Question, answer: Answer | None, shape: Layout, outcome: Outcome
) -> list[str]:
    texts: list[str] = []
    if isinstance(question, SingleChoice | MultipleChoice) and answer is not None:
        try:
            picked = _indexes(question, answer, shape)
        except AnswerError:
            picked = []
        if isinstance(picked, list):
            chosen = sorted(picked, key=shape.order["c"].index)
            texts.extend(question.choices[i].feedback for i in chosen)
    by_outcome = {
        "correct": question.feedback.correct,
        "partial": question.feedback.partial or question.feedback.incorrect,
        "incorrect": question.feedback.incorrect,
        "unanswered": question.feedback.incorrect,
    }
    texts.append(by_outcome[outcome])
    return [text for text in texts if text]


class Score(msgspec.Struct, frozen=True, kw_only=True):
    points_awarded: float
    points_possible: float
    percent: float
    passed: bool


def total(results: list[QuestionResult], passing_percent: float) -> Score:
    """The attempt's score; it passes at ``passing_percent`` or more (0-100)."""
    awarded = sum(result.points_awarded for result in results)
    possible = sum(result.points_possible for result in results)
    percent = round(100.0 * awarded / possible, 4) if possible else 0.0
    return Score(
        points_awarded=round(awarded, 6),
        points_possible=round(possible, 6),
        percent=percent,
        passed=percent >= passing_percent,
    )
