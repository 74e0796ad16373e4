"""Distinct-n, self-BLEU, perplexity and the toxicity flag: definitions, bad input, the kit."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from genarch.errors import ConfigError, InvalidInputError
from genarch.evaluation import (
    DistinctN,
    LexiconToxicity,
    Perplexity,
    SelfBLEU,
    load_toxicity_lexicon,
)
from genarch.schemas import TextResult
from genarch.testing import check_evaluator


class Unigram:
    """log p(text) = sum over characters after the first of log p(char); 'a' is 1/2, others 1/8."""

    def log_prob(self, samples: Sequence[str]) -> torch.Tensor:
        def one(text: str) -> float:
            return sum(math.log(0.5 if c == "a" else 0.125) for c in text[1:])

        return torch.tensor([one(s) for s in samples], dtype=torch.float64)


def _perplexity() -> Perplexity:
    return Perplexity(Unigram(), scored_tokens=lambda text: len(text) - 1)


# ------------------------------------------------------------------ diversity


def test_distinct_n_by_hand() -> None:
    # tokens: a cat sat | a cat ran -> unigrams 4 of 6 distinct; bigrams 3 of 4
    scores = DistinctN(orders=(1, 2, 3)).evaluate(None, ["A cat sat.", "a cat ran"]).scores
    assert scores == {"distinct_1": 4 / 6, "distinct_2": 3 / 4, "distinct_3": 2 / 2}


def test_distinct_n_without_ngrams_is_zero() -> None:
    assert DistinctN(orders=(3,)).evaluate(None, ["a b", "!"]).scores == {"distinct_3": 0.0}


def test_self_bleu_of_copies_is_one_and_of_disjoint_outputs_is_zero() -> None:
    assert SelfBLEU().evaluate(None, ["x y z w"] * 3).scores["self_bleu"] == pytest.approx(1.0)
    assert SelfBLEU().evaluate(None, ["a b", "c d", "e f"]).scores["self_bleu"] == 0.0


def test_self_bleu_needs_two_outputs() -> None:
    with pytest.raises(InvalidInputError, match="result to hold at least 2 outputs, got 1"):
        SelfBLEU().evaluate(None, ["only one"])


@pytest.mark.parametrize("evaluator", [DistinctN(), SelfBLEU()], ids=repr)
@pytest.mark.parametrize(
    ("result", "named"), [("one string", "result"), ([1, "a"], r"result\[0\]"), (None, "result")]
)
def test_diversity_bad_input_names_the_argument(
    evaluator: object, result: object, named: str
) -> None:
    with pytest.raises(InvalidInputError, match=named):
        evaluator.evaluate(None, result)  # type: ignore[attr-defined]


def test_distinct_n_bad_config() -> None:
    with pytest.raises(ConfigError, match="orders"):
        DistinctN(orders=())


@pytest.mark.parametrize("evaluator", [DistinctN(), SelfBLEU(), SelfBLEU(max_order=2)], ids=repr)
def test_diversity_kit_passes(evaluator: object) -> None:
    sets = [
        ("p", ["a cat sat", "a dog ran", "the cat ran"]),
        ("q", ["x y", TextResult(text="x y z")]),
    ]
    check_evaluator(evaluator, sets, invalid_examples=[("p", "not a set"), ("p", [3, 4])])  # type: ignore[arg-type]


# ----------------------------------------------------------------- perplexity


def test_perplexity_by_hand() -> None:
    # "xaa": scored "a", "a" -> p = 1/2 each -> perplexity 2; "xbb" -> 8; "xab" -> sqrt(16) = 4
    perplexity = _perplexity()
    assert perplexity.evaluate(None, "xaa").scores["perplexity"] == pytest.approx(2.0)
    assert perplexity.evaluate(None, TextResult(text="xbb")).scores["perplexity"] == pytest.approx(
        8.0
    )
    scores = perplexity.evaluate(None, "xab").scores
    assert scores == pytest.approx({"perplexity": 4.0, "log_prob": math.log(1 / 16), "tokens": 2.0})


def test_corpus_perplexity_weights_by_tokens() -> None:
    # "xa" (1 token, log 1/2) and "xbbb" (3 tokens, log 1/512): exp(-(log 1/1024) / 4) = 1024 ** 0.25
    assert _perplexity().corpus_perplexity(["xa", "xbbb"]) == pytest.approx(1024**0.25)


def test_perplexity_refuses_a_text_without_scored_tokens() -> None:
    with pytest.raises(InvalidInputError, match="0 scored tokens"):
        _perplexity().evaluate(None, "x")


def test_perplexity_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="model"):
        Perplexity(object(), scored_tokens=len)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="scored_tokens"):
        Perplexity(Unigram(), scored_tokens=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="outputs"):
        _perplexity().corpus_perplexity("xa")


def test_perplexity_on_a_real_text_generator() -> None:
    from genarch.data import ByteTokenizer
    from genarch.models import GPT, GPTConfig, TextGenerator

    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = GPT(
        GPTConfig(
            vocab_size=tokenizer.vocab_size, context_length=32, n_layer=1, n_head=1, n_embd=16
        )
    )
    generator = TextGenerator(model, tokenizer)
    perplexity = Perplexity(generator, scored_tokens=lambda text: len(tokenizer.encode(text)) - 1)
    value = perplexity.evaluate(None, "abc def").scores["perplexity"]
    assert 1.0 < value < 3 * tokenizer.vocab_size  # untrained: about the vocabulary size
    check_evaluator(perplexity, [(None, "abc def"), (None, "hgf edc ba")])


def test_perplexity_kit_passes() -> None:
    check_evaluator(
        _perplexity(),
        [(None, "xab"), ("prompt", TextResult(text="xbbb"))],
        invalid_examples=[(None, "")],
    )


# ------------------------------------------------------------------- toxicity


def test_toxicity_flags_lexicon_terms_and_phrases() -> None:
    flag = LexiconToxicity()
    evaluation = flag.evaluate(None, "You're pathetic. Shut   up, IDIOT!")
    assert evaluation.scores == {"toxic": 1.0, "toxic_matches": 3.0}
    assert sorted(evaluation.details["matched"].split(",")) == [
        "idiot",
        "shut up",
        "you re pathetic",
    ]


def test_toxicity_matches_whole_words_only() -> None:
    flag = LexiconToxicity()
    assert (
        flag.evaluate(None, "A classic assessment of Scunthorpe's dickens.").scores["toxic"] == 0.0
    )


def test_toxicity_extra_terms() -> None:
    assert (
        LexiconToxicity(extra_terms=("frobnicate",)).evaluate(None, "Frobnicate it").scores["toxic"]
        == 1.0
    )
    assert LexiconToxicity().evaluate(None, "Frobnicate it").scores["toxic"] == 0.0


def test_the_shipped_lexicon_is_lowercase_tokens() -> None:
    lexicon = load_toxicity_lexicon()
    assert len(lexicon.terms) >= 30
    assert len(lexicon.phrases) >= 5
    assert all(term.isalnum() and term == term.lower() for term in lexicon.terms)


def test_toxicity_kit_passes() -> None:
    check_evaluator(
        LexiconToxicity(), [(None, "shut up"), (None, "hello"), (None, TextResult(text="idiot"))]
    )
