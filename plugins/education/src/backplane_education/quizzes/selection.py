"""Per-attempt randomness, reproducible from the attempt's seed.

An attempt stores one random 63-bit ``seed``. From it alone come: which questions are drawn
from each pool and in what order (``draw_paper``), the order of each question's options, and
the tokens that name them (``layout``). Re-running with the same seed gives the same paper, so
grading, review and an audit all see exactly what the learner saw, and nothing but the seed
needs storing. Tokens are keyed hashes of the seed, so they differ between attempts.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from backplane_education.quizzes.questions import (
    Matching,
    MultipleChoice,
    Ordering,
    Question,
    SingleChoice,
)


class Draw(msgspec.Struct, frozen=True, kw_only=True):
    """Take ``count`` questions (all when None) at random from ``question_ids``."""

    question_ids: list[str]
    count: int | None = None


def new_seed() -> int:
    """A fresh attempt seed (fits a signed 64-bit column)."""
    return secrets.randbits(63)


def draw_paper(seed: int, draws: Sequence[Draw], *, shuffle: bool) -> list[str]:
    """The question ids of one attempt, in order. Each draw samples without replacement; an id
    drawn twice (pools that overlap) appears once. With ``shuffle`` the whole paper is shuffled,
    else draws keep their order and each draw its pool's order."""
    rng = random.Random(f"paper:{seed}")  # noqa: S311
    paper: list[str] = []
    seen: set[str] = set()
    for draw in draws:
        pool = [qid for qid in dict.fromkeys(draw.question_ids) if qid not in seen]
        count = len(pool) if draw.count is None else min(draw.count, len(pool))
        picked = set(rng.sample(pool, count))
        chosen = [qid for qid in pool if qid in picked]
        paper.extend(chosen)
        seen.update(chosen)
    if shuffle:
        rng.shuffle(paper)
    return paper


def option_token(seed: int, position: int, side: str, index: int) -> str:
    """The name a learner sees for option ``index`` of ``side`` of the question at
    ``position``: 12 hex digits of a hash keyed by the seed (unguessable across attempts)."""
    key = seed.to_bytes(8, "big", signed=False)
    digest = hashlib.blake2b(f"{position}:{side}:{index}".encode(), key=key, digest_size=6)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Layout:
    """How one question is shown in one attempt: for each side (``c`` choices, ``i`` items,
    ``l`` lefts, ``r`` rights) the authored indexes in display order, and each one's token."""

    order: dict[str, list[int]]
    tokens: dict[str, list[str]]

    def token_of(self, side: str, index: int) -> str:
        return self.tokens[side][index]

    def index_of(self, side: str) -> dict[str, int]:
        """Token → authored index for one side (what grading maps answers back with)."""
        return {token: index for index, token in enumerate(self.tokens[side])}


def _sides(question: Question) -> dict[str, int]:
    if isinstance(question, SingleChoice | MultipleChoice):
        return {"c": len(question.choices)}
    if isinstance(question, Ordering):
        return {"i": len(question.items)}
    if isinstance(question, Matching):
        return {"l": len(question.pairs), "r": len(question.pairs) + len(question.distractors)}
    return {}


def _derange(order: list[int], solved: list[int]) -> list[int]:
    """``order`` rotated by one when it starts with ``solved``, so that the display never gives
    the answer away (items shown in their correct order, rights aligned with their lefts).
    Rotating cannot land on ``solved`` again: its entries are distinct."""
    if len(order) > 1 and order[: len(solved)] == solved:
        return order[1:] + order[:1]
    return order


def layout(question: Question, seed: int, position: int, *, shuffle_options: bool) -> Layout:
    """The display order and tokens of ``question`` at ``position`` of the attempt ``seed``.
    Choices keep the authored order unless ``shuffle_options``; items to order and the right
    column of a matching are always shuffled (and never shown solved)."""
    rng = random.Random(f"options:{seed}:{position}")  # noqa: S311
    order: dict[str, list[int]] = {}
    tokens: dict[str, list[str]] = {}
    for side, size in _sides(question).items():
        indexes = list(range(size))
        always = side in ("i", "r")
        if shuffle_options or always:
            rng.shuffle(indexes)
        if side == "i":
            indexes = _derange(indexes, sorted(indexes))
        elif side == "r":
            indexes = _derange(indexes, order["l"])
        order[side] = indexes
        tokens[side] = [option_token(seed, position, side, index) for index in range(size)]
    return Layout(order=order, tokens=tokens)
