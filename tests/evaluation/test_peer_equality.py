"""BLEU and ROUGE-L equal the reference packages (sacrebleu, rouge-score) to 1e-9.

The shared corpus: sentences of Python's own documentation
(``pydoc_data.topics``, offline), each paired with a seeded perturbation of
itself (words dropped, swapped, repeated, replaced, case changed, truncated,
punctuation and numbers added). Both packages are in the ``dev`` extra.
"""

from __future__ import annotations

import random
import re
from pydoc_data.topics import topics

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer  # type: ignore[import-untyped]

from genarch.evaluation import BLEU, RougeL, SelfBLEU, rouge_tokens, tokenize_13a
from genarch.evaluation.bleu import BLEUConfig

TOLERANCE = 1e-9


def _sentences(limit: int = 240) -> list[str]:
    found = []
    for name in sorted(topics):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(topics[name].split())):
            if 4 <= len(sentence.split()) <= 40:
                found.append(sentence)
    return found[:: max(1, len(found) // limit)][:limit]


def _perturb(sentence: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = sentence.split()
    for _ in range(rng.randint(0, 3)):
        kind = rng.randrange(9)
        i = rng.randrange(len(words)) if words else 0
        if kind == 0 and len(words) > 1:
            del words[i]
        elif kind == 1 and len(words) > 1:
            j = min(i + 1, len(words) - 1)
            words[i], words[j] = words[j], words[i]
        elif kind == 2 and words:
            words.insert(i, words[i])
        elif kind == 3 and words:
            words[i] = rng.choice(vocabulary)
        elif kind == 4:
            words = [w.lower() for w in words]
        elif kind == 5:
            words = words[: rng.randint(1, max(1, len(words)))]
        elif kind == 6:
            words.insert(i, rng.choice([",", ";", "(x)", "3.14", "1,000", "a-b", "&amp;", "?!"]))
        elif kind == 7:
            words.append(rng.choice(["Ünïcode", "naïve", "e.g.", "...", "--"]))
    return " ".join(words)


SENTENCES = _sentences()
VOCABULARY = sorted({w for s in SENTENCES for w in s.split()})
PERTURBED = [_perturb(s, random.Random(i), VOCABULARY) for i, s in enumerate(SENTENCES)]
SECOND = [_perturb(s, random.Random(10_000 + i), VOCABULARY) for i, s in enumerate(SENTENCES)]


def test_the_corpus_is_large_and_varied() -> None:
    assert len(SENTENCES) >= 200
    changed = sum(a != b for a, b in zip(SENTENCES, PERTURBED, strict=True))
    assert 0.5 * len(SENTENCES) < changed < len(SENTENCES)  # mostly perturbed, some identical


def test_13a_tokens_equal_sacrebleus() -> None:
    tokenizer = sacrebleu.BLEU().tokenizer
    for text in SENTENCES + PERTURBED:
        assert tokenize_13a(text) == tokenizer(text.rstrip()).split()


def test_rouge_tokens_equal_rouge_scores() -> None:
    from rouge_score import tokenize

    for text in SENTENCES + PERTURBED:
        assert rouge_tokens(text) == tokenize.tokenize(text, None)


def test_sentence_bleu_equals_sacrebleu() -> None:
    bleu, worst = BLEU(), 0.0
    for reference, hypothesis in zip(SENTENCES, PERTURBED, strict=True):
        ours = bleu.evaluate(reference, hypothesis).scores["bleu"]
        theirs = sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100
        worst = max(worst, abs(ours - theirs))
    print(f"sentence BLEU, {len(SENTENCES)} pairs: max |ours - sacrebleu| = {worst:.3g}")
    assert worst <= TOLERANCE


def test_sentence_bleu_with_two_references_equals_sacrebleu() -> None:
    bleu, worst = BLEU(), 0.0
    for first, second, hypothesis in zip(SENTENCES, SECOND, PERTURBED, strict=True):
        ours = bleu.evaluate([first, second], hypothesis).scores["bleu"]
        theirs = sacrebleu.sentence_bleu(hypothesis, [first, second]).score / 100
        worst = max(worst, abs(ours - theirs))
    assert worst <= TOLERANCE


@pytest.mark.parametrize(
    ("config", "options"),
    [
        ({}, {}),
        ({"lowercase": True}, {"lowercase": True}),
        ({"smooth_method": "none"}, {"smooth_method": "none"}),
    ],
)
def test_corpus_bleu_equals_sacrebleu(
    config: dict[str, object], options: dict[str, object]
) -> None:
    ours = BLEU(BLEUConfig(**config)).corpus_score(SENTENCES, PERTURBED)
    theirs = sacrebleu.corpus_bleu(PERTURBED, [SENTENCES], **options).score / 100
    print(f"corpus BLEU {config}: ours {ours:.12f}, sacrebleu {theirs:.12f}")
    assert abs(ours - theirs) <= TOLERANCE
    two = BLEU(BLEUConfig(**config)).corpus_score(
        list(zip(SENTENCES, SECOND, strict=True)), PERTURBED
    )
    assert (
        abs(two - sacrebleu.corpus_bleu(PERTURBED, [SENTENCES, SECOND], **options).score / 100)
        <= TOLERANCE
    )


def test_self_bleu_is_the_mean_of_sacrebleu_sentence_bleus() -> None:
    outputs = PERTURBED[:12]
    expected = sum(
        sacrebleu.sentence_bleu(o, outputs[:i] + outputs[i + 1 :]).score / 100
        for i, o in enumerate(outputs)
    ) / len(outputs)
    assert abs(SelfBLEU().evaluate(None, outputs).scores["self_bleu"] - expected) <= TOLERANCE


def test_rouge_l_equals_rouge_score() -> None:
    scorer, rouge, worst = rouge_scorer.RougeScorer(["rougeL"]), RougeL(), 0.0
    for reference, output in zip(SENTENCES, PERTURBED, strict=True):
        ours = rouge.evaluate(reference, output).scores
        theirs = scorer.score(reference, output)["rougeL"]
        for key, value in (
            ("rouge_l_precision", theirs.precision),
            ("rouge_l_recall", theirs.recall),
            ("rouge_l_f", theirs.fmeasure),
        ):
            worst = max(worst, abs(ours[key] - value))
    print(f"ROUGE-L, {len(SENTENCES)} pairs: max |ours - rouge-score| = {worst:.3g}")
    assert worst <= TOLERANCE


def test_rouge_l_with_two_references_equals_score_multi() -> None:
    scorer, rouge = rouge_scorer.RougeScorer(["rougeL"]), RougeL()
    for first, second, output in zip(SENTENCES, SECOND, PERTURBED, strict=True):
        ours = rouge.evaluate([first, second], output).scores
        theirs = scorer.score_multi([first, second], output)["rougeL"]
        assert abs(ours["rouge_l_f"] - theirs.fmeasure) <= TOLERANCE
        assert abs(ours["rouge_l_precision"] - theirs.precision) <= TOLERANCE


_TEXT = st.text(alphabet=st.sampled_from(list("ab c.,-1;&()'\"é\n")), min_size=0, max_size=30)


@settings(max_examples=150, deadline=None)
@given(reference=_TEXT, hypothesis=_TEXT)
def test_bleu_and_rouge_agree_on_arbitrary_text(reference: str, hypothesis: str) -> None:
    ours = BLEU().evaluate(reference, hypothesis).scores["bleu"]
    assert abs(ours - sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100) <= TOLERANCE
    theirs = rouge_scorer.RougeScorer(["rougeL"]).score(reference, hypothesis)["rougeL"]
    assert (
        abs(RougeL().evaluate(reference, hypothesis).scores["rouge_l_f"] - theirs.fmeasure)
        <= TOLERANCE
    )
