"""The pure quiz engine: question validation, the learner's view, seeded draws, grading."""

from __future__ import annotations

import msgspec
import pytest

from backplane_education.quizzes import (
    AnswerError,
    Draw,
    check_answer,
    decode_question,
    draw_paper,
    grade,
    present,
    total,
)
from backplane_education.quizzes.learner import Answer, QuestionView
from backplane_education.quizzes.questions import (
    Choice,
    Feedback,
    Matching,
    MatchPair,
    MultipleChoice,
    Numeric,
    Ordering,
    Question,
    ShortAnswer,
    SingleChoice,
    TrueFalse,
)

SEED = 123456789
FULLWIDTH = "".join(chr(ord(letter) + 0xFEE0) for letter in "MITOCHONDRIA")


def _answer(raw: dict[str, object]) -> Answer:
    answer: Answer = msgspec.convert(raw, type=Answer)
    return answer


def single() -> SingleChoice:
    return SingleChoice(
        prompt="Capital of France?",
        choices=[
            Choice(text="Lyon", feedback="Second city."),
            Choice(text="Paris", correct=True, feedback="Yes."),
            Choice(text="Nice"),
        ],
    )


def multiple(*, partial: bool = True) -> MultipleChoice:
    return MultipleChoice(
        prompt="Primes?",
        points=4,
        partial_credit=partial,
        choices=[
            Choice(text="2", correct=True),
            Choice(text="3", correct=True),
            Choice(text="4"),
            Choice(text="9"),
        ],
    )


def ordering(*, partial: bool = True) -> Ordering:
    return Ordering(
        prompt="Smallest first", items=["one", "two", "three", "four"], partial_credit=partial
    )


def matching(*, partial: bool = True) -> Matching:
    return Matching(
        prompt="Match",
        pairs=[MatchPair(left="H", right="hydrogen"), MatchPair(left="O", right="oxygen")],
        distractors=["gold"],
        partial_credit=partial,
    )


def tokens(view: QuestionView, field: str, texts: list[str]) -> list[str]:
    by_text = {option.text: option.id for option in getattr(view, field)}
    return [by_text[text] for text in texts]


def test_questions_decode_by_type_and_reject_bad_keys() -> None:
    question = decode_question(
        b'{"type":"numeric","prompt":"pi?","answer":3.14,"tolerance":0.01,"points":2}'
    )
    assert isinstance(question, Numeric)
    assert question.points == 2
    bad = [
        b'{"type":"single","prompt":"p","choices":[{"text":"a"},{"text":"b"}]}',
        b'{"type":"single","prompt":"p","choices":[{"text":"a","correct":true},'
        b'{"text":"b","correct":true}]}',
        b'{"type":"multiple","prompt":"p","choices":[{"text":"a"},{"text":"a","correct":true}]}',
        b'{"type":"ordering","prompt":"p","items":["x"]}',
        b'{"type":"matching","prompt":"p","pairs":[{"left":"a","right":"b"},'
        b'{"left":"c","right":"d"}],"distractors":["b"]}',
        b'{"type":"essay","prompt":"p"}',
        b'{"type":"true_false","prompt":"p","answer":true,"points":0}',
        b'{"type":"true_false","prompt":"p","answer":true,"secret":1}',
    ]
    for raw in bad:
        with pytest.raises(msgspec.ValidationError):
            decode_question(raw)


@pytest.mark.parametrize(
    "question",
    [
        single(),
        multiple(),
        TrueFalse(prompt="Sky blue?", answer=False),
        Numeric(prompt="pi", answer=3.14159, tolerance=0.001),
        ShortAnswer(prompt="Organelle?", accepted=["mitochondrion", "mitochondria"]),
        ordering(),
        matching(),
    ],
)
def test_learner_view_has_no_key_fields(question: Question) -> None:
    view = present(question, SEED, 3)
    encoded = msgspec.json.encode(view).decode()
    fields = set(msgspec.to_builtins(view))
    assert fields <= {"type", "position", "prompt", "points", "options", "items", "left", "right"}
    for secret in ("correct", "accepted", '"answer"', "3.14159", "mitochondri", ":false", ":true"):
        assert secret not in encoded
    assert view.position == 3


def test_ordering_and_matching_are_never_shown_solved() -> None:
    for seed in range(300):
        view = present(ordering(), seed, 0)
        assert [item.text for item in view.items] != ordering().items  # type: ignore[union-attr]
        shown = present(matching(), seed, 0)
        lefts = [o.text for o in shown.left]  # type: ignore[union-attr]
        rights = [o.text for o in shown.right]  # type: ignore[union-attr]
        pairs = {"H": "hydrogen", "O": "oxygen"}
        assert rights[: len(lefts)] != [pairs[left] for left in lefts]


def test_layout_is_reproducible_per_seed_and_differs_between_attempts() -> None:
    question = multiple()
    first = present(question, SEED, 0, shuffle_options=True)
    assert present(question, SEED, 0, shuffle_options=True) == first
    other = present(question, SEED + 1, 0, shuffle_options=True)
    assert {o.id for o in first.options}.isdisjoint({o.id for o in other.options})  # type: ignore[union-attr]
    orders = {tuple(o.text for o in present(question, s, 0).options) for s in range(50)}  # type: ignore[union-attr]
    assert len(orders) > 5
    kept = present(question, SEED, 0, shuffle_options=False)
    assert [o.text for o in kept.options] == ["2", "3", "4", "9"]  # type: ignore[union-attr]


def test_draw_paper_is_seeded_samples_each_pool_and_never_repeats() -> None:
    pool_a = [f"a{i}" for i in range(10)]
    pool_b = [f"b{i}" for i in range(10)] + ["a1"]
    draws = [Draw(question_ids=pool_a, count=3), Draw(question_ids=pool_b, count=4)]
    paper = draw_paper(SEED, draws, shuffle=True)
    assert paper == draw_paper(SEED, draws, shuffle=True)
    assert len(paper) == 7 == len(set(paper))
    assert sum(qid in pool_a for qid in paper) >= 3
    papers = {tuple(draw_paper(seed, draws, shuffle=True)) for seed in range(40)}
    assert len(papers) > 30
    fixed = draw_paper(SEED, [Draw(question_ids=pool_a)], shuffle=False)
    assert fixed == pool_a
    assert draw_paper(SEED, [Draw(question_ids=pool_a, count=50)], shuffle=False) == pool_a


def _graded(question: Question, raw: dict[str, object] | None, position: int = 0) -> float:
    answer = None if raw is None else _answer(raw)
    return grade(question, answer, SEED, position, shuffle_options=True).score


def test_single_choice_and_true_false_are_all_or_nothing() -> None:
    view = present(single(), SEED, 0)
    paris, lyon = tokens(view, "options", ["Paris", "Lyon"])
    assert _graded(single(), {"type": "single", "choice": paris}) == 1.0
    result = grade(
        single(), _answer({"type": "single", "choice": lyon}), SEED, 0, shuffle_options=True
    )
    assert (result.outcome, result.score, result.feedback) == ("incorrect", 0.0, ["Second city."])
    question = TrueFalse(prompt="p", answer=False, feedback=Feedback(correct="Right."))
    assert _graded(question, {"type": "true_false", "value": False}) == 1.0
    result = grade(
        question, _answer({"type": "true_false", "value": False}), SEED, 0, shuffle_options=True
    )
    assert result.feedback == ["Right."]
    assert _graded(question, {"type": "true_false", "value": True}) == 0.0


def test_multiple_choice_partial_credit_rule() -> None:
    view = present(multiple(), SEED, 0)
    two, three, four, nine = tokens(view, "options", ["2", "3", "4", "9"])
    assert _graded(multiple(), {"type": "multiple", "choices": [two, three]}) == 1.0
    assert _graded(multiple(), {"type": "multiple", "choices": [two]}) == 0.5
    assert _graded(multiple(), {"type": "multiple", "choices": [two, four]}) == 0.0
    assert _graded(multiple(), {"type": "multiple", "choices": [two, three, four]}) == 0.5
    assert _graded(multiple(), {"type": "multiple", "choices": [two, three, four, nine]}) == 0.0
    assert _graded(multiple(partial=False), {"type": "multiple", "choices": [two]}) == 0.0
    result = grade(
        multiple(), _answer({"type": "multiple", "choices": [two]}), SEED, 0, shuffle_options=True
    )
    assert (result.outcome, result.points_awarded, result.points_possible) == ("partial", 2.0, 4.0)


def test_numeric_tolerance_and_short_text_normalisation() -> None:
    question = Numeric(prompt="g", answer=9.81, tolerance=0.05)
    assert _graded(question, {"type": "numeric", "value": 9.86}) == 1.0
    assert _graded(question, {"type": "numeric", "value": 9.87}) == 0.0
    exact = Numeric(prompt="third", answer=0.1 + 0.2)
    assert _graded(exact, {"type": "numeric", "value": 0.3}) == 1.0
    text = ShortAnswer(prompt="o", accepted=["Mitochondria"])
    assert _graded(text, {"type": "short_text", "text": "  mitochondria "}) == 1.0
    assert _graded(text, {"type": "short_text", "text": FULLWIDTH}) == 1.0
    assert _graded(text, {"type": "short_text", "text": "mitochondrion"}) == 0.0
    strict = ShortAnswer(prompt="o", accepted=["DNA"], case_sensitive=True)
    assert _graded(strict, {"type": "short_text", "text": "dna"}) == 0.0
    with pytest.raises(msgspec.ValidationError):
        _answer({"type": "numeric", "value": float("nan")})


def test_ordering_and_matching_partial_credit() -> None:
    view = present(ordering(), SEED, 0)
    one, two, three, four = tokens(view, "items", ["one", "two", "three", "four"])
    assert _graded(ordering(), {"type": "ordering", "order": [one, two, three, four]}) == 1.0
    assert _graded(ordering(), {"type": "ordering", "order": [one, two, four, three]}) == 0.5
    assert (
        _graded(ordering(partial=False), {"type": "ordering", "order": [one, two, four, three]})
        == 0.0
    )
    shown = present(matching(), SEED, 0)
    h, o = tokens(shown, "left", ["H", "O"])
    hyd, oxy, gold = tokens(shown, "right", ["hydrogen", "oxygen", "gold"])
    assert _graded(matching(), {"type": "matching", "matches": {h: hyd, o: oxy}}) == 1.0
    assert _graded(matching(), {"type": "matching", "matches": {h: hyd, o: gold}}) == 0.5
    assert _graded(matching(), {"type": "matching", "matches": {h: hyd}}) == 0.5
    assert _graded(matching(partial=False), {"type": "matching", "matches": {h: hyd}}) == 0.0


def test_malformed_answers_are_refused_and_unanswered_scores_zero() -> None:
    view = present(ordering(), SEED, 0)
    one, two, three, _ = tokens(view, "items", ["one", "two", "three", "four"])
    cases: list[tuple[Question, dict[str, object]]] = [
        (single(), {"type": "numeric", "value": 1}),
        (single(), {"type": "single", "choice": "nope"}),
        (ordering(), {"type": "ordering", "order": [one, two, three]}),
        (ordering(), {"type": "ordering", "order": [one, one, two, three]}),
    ]
    for question, raw in cases:
        with pytest.raises(AnswerError):
            check_answer(question, _answer(raw), SEED, 0, shuffle_options=True)
    # a token from another attempt does not fit this one
    other = present(single(), SEED + 1, 0)
    with pytest.raises(AnswerError):
        check_answer(
            single(),
            _answer({"type": "single", "choice": other.options[0].id}),  # type: ignore[union-attr]
            SEED,
            0,
            shuffle_options=True,
        )
    result = grade(single(), None, SEED, 0, shuffle_options=True)
    assert (result.outcome, result.score) == ("unanswered", 0.0)


def test_total_and_passing_score() -> None:
    results = [
        grade(multiple(), None, SEED, 0, shuffle_options=True),
        grade(
            TrueFalse(prompt="p", answer=True),
            _answer({"type": "true_false", "value": True}),
            SEED,
            1,
            shuffle_options=True,
        ),
    ]
    score = total(results, passing_percent=20)
    assert (score.points_awarded, score.points_possible, score.percent, score.passed) == (
        1.0,
        5.0,
        20.0,
        True,
    )
    assert not total(results, passing_percent=20.01).passed
