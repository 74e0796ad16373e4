"""BLEU, ROUGE-L, exact match and token F1: hand-computed definitions, bad input, the kit."""

from __future__ import annotations

import math

import pytest

from genarch.errors import ConfigError, InvalidInputError
from genarch.evaluation import BLEU, ExactMatch, RougeL, TokenF1, squad_normalize
from genarch.evaluation.rouge import lcs_length
from genarch.schemas import TextResult
from genarch.testing import check_evaluator

EXAMPLES = [
    ("the cat sat on the mat", "the cat sat on a mat"),
    (["Paris is the capital.", "The capital is Paris."], "Paris is the capital."),
    ("a b c d", TextResult(text="d c b a")),
]


def test_bleu_by_hand() -> None:
    # hypothesis "the cat sat on a mat" vs "the cat sat on the mat": matches 5/6, 3/5, 2/4, 1/3,
    # equal lengths (no brevity penalty)
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    score = BLEU().evaluate("the cat sat on the mat", "the cat sat on a mat").scores["bleu"]
    assert score == pytest.approx(expected, abs=1e-12)


def test_bleu_brevity_penalty_by_hand() -> None:
    # "the cat" vs "the cat sat on the mat": precisions 1 with effective order 2, BP = exp(1 - 6/2)
    score = BLEU().evaluate("the cat sat on the mat", "the cat").scores["bleu"]
    assert score == pytest.approx(math.exp(1 - 6 / 2), abs=1e-12)


def test_bleu_exp_smoothing_by_hand() -> None:
    # "a b x d" vs "a b c d": 3/4, 1/3, then 0/2 -> 1/(2*2), 0/1 -> 1/(4*1)
    expected = (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25
    assert BLEU().evaluate("a b c d", "a b x d").scores["bleu"] == pytest.approx(
        expected, abs=1e-12
    )
    assert BLEU(smooth_method="none").evaluate("a b c d", "a b x d").scores["bleu"] < 1e-100


def test_bleu_of_nothing_in_common_is_zero() -> None:
    assert BLEU().evaluate("a b c", "x y z").scores["bleu"] == 0.0
    assert BLEU().evaluate("a b c", "").scores["bleu"] == 0.0


def test_corpus_bleu_pools_statistics() -> None:
    bleu = BLEU()
    refs, hyps = ["a b c d", "e f g h"], ["a b c d", "e f x h"]
    stats = bleu.statistics(refs[0], hyps[0]) + bleu.statistics(refs[1], hyps[1])
    assert stats.matches == (7, 4, 2, 1)
    assert stats.totals == (8, 6, 4, 2)
    expected = (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25
    assert bleu.corpus_score(refs, hyps) == pytest.approx(expected, abs=1e-12)


def test_lcs_by_hand() -> None:
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" and "the mat the cat sat" is 3 ("the cat sat")
    scores = RougeL().evaluate("the cat sat on the mat", "the mat the cat sat").scores
    assert scores["rouge_l_precision"] == pytest.approx(3 / 5)
    assert scores["rouge_l_recall"] == pytest.approx(3 / 6)
    assert scores["rouge_l_f"] == pytest.approx(2 * 0.6 * 0.5 / 1.1)


def test_rouge_l_picks_the_reference_with_the_best_f() -> None:
    scores = RougeL().evaluate(["x y z", "a b c"], "a b c").scores
    assert scores["rouge_l_f"] == 1.0


def test_squad_normalisation() -> None:
    assert squad_normalize("The  Cat's  hat!") == "cats hat"
    assert squad_normalize("an apple, a pear") == "apple pear"
    assert squad_normalize("theatre") == "theatre"  # articles only as whole words


def test_exact_match_by_hand() -> None:
    em = ExactMatch()
    assert em.evaluate("The Beatles", "beatles!").scores == {"exact_match": 1.0}
    assert em.evaluate("The Beatles", "the beatles band").scores == {"exact_match": 0.0}
    assert em.evaluate(["Rome", "the Eternal City"], "eternal city").scores == {"exact_match": 1.0}


def test_token_f1_by_hand() -> None:
    f1 = TokenF1()
    # gold [eiffel, tower], prediction [tower, in, paris]: overlap 1, P = 1/3, R = 1/2
    assert f1.evaluate("the Eiffel Tower", "tower in Paris").scores["f1"] == pytest.approx(0.4)
    # the overlap is a multiset: "cat cat" shares one "cat" with "cat dog"
    assert f1.evaluate("cat dog", "cat cat").scores["f1"] == pytest.approx(0.5)
    assert f1.evaluate(["x", "cat dog"], "cat dog").scores["f1"] == 1.0


def test_token_f1_of_empty_answers_follows_squad_2() -> None:
    assert TokenF1().evaluate("the", "a").scores["f1"] == 1.0  # both normalise to nothing
    assert TokenF1().evaluate("the", "cat").scores["f1"] == 0.0


@pytest.mark.parametrize("evaluator", [BLEU(), RougeL(), ExactMatch(), TokenF1()], ids=repr)
@pytest.mark.parametrize(
    ("request_", "result", "named"),
    [
        ("ref", 3, "result|hypothesis"),
        ("ref", b"bytes", "result|hypothesis"),
        (None, "out", "request|references"),
        ([], "out", "request|references"),
        (["ok", 5], "out", r"request\[1\]|references\[1\]"),
        ("ref", "bad \udc80", "result|hypothesis"),
    ],
)
def test_bad_input_names_the_argument(
    evaluator: object, request_: object, result: object, named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        evaluator.evaluate(request_, result)  # type: ignore[attr-defined]


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_order"):
        BLEU(max_order=0)
    with pytest.raises(ConfigError, match="max_order"):
        BLEU.from_config({"max_order": 11})
    with pytest.raises(ConfigError, match="smooth_method"):
        BLEU(smooth_method="floor")


def test_corpus_bleu_rejects_mismatched_lengths() -> None:
    with pytest.raises(InvalidInputError, match="as many references as hypotheses"):
        BLEU().corpus_score(["a"], ["a", "b"])
    with pytest.raises(InvalidInputError, match="segment 1"):
        BLEU().corpus_score(["a", "b"], ["a", None])


@pytest.mark.parametrize(
    "evaluator", [BLEU(), RougeL(), ExactMatch(), TokenF1(), BLEU(lowercase=True)], ids=repr
)
def test_the_kit_passes(evaluator: object) -> None:
    check_evaluator(evaluator, EXAMPLES, invalid_examples=[(None, "x"), ("x", 1)])  # type: ignore[arg-type]
