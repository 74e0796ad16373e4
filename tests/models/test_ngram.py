"""NGramLM (Witten-Bell counts), its Interpolation with a GPT, and sliding-window log-probs."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from genarch.data import ByteTokenizer
from genarch.data.datasets import python_docs
from genarch.errors import ConfigError, IntegrityError, InvalidInputError
from genarch.models import GPT, Interpolation, NGramLM, SpeculativeGenerator, TextGenerator
from genarch.models.perplexity import token_log_probs
from genarch.schemas import TextRequest
from genarch.testing import check_generator
from models.gpt_testing import tiny_model

ROWS = [[0, 1, 0, 1, 0, 2, 3], [1, 0, 1, 1]]
TEXT = "the cat sat on the mat. the dog sat on the log. " * 20


def witten_bell(
    rows: list[list[int]], vocab: int, order: int, context: list[int], token: int
) -> float:
    """The Witten-Bell estimate written out from its definition, for comparison."""
    unigram = Counter(t for row in rows for t in row)
    p = (unigram[token] + 1) / (sum(unigram.values()) + vocab)
    for n in range(1, order):
        if n > len(context):
            break
        history = tuple(context[-n:])
        follow = Counter(
            row[i] for row in rows for i in range(n, len(row)) if tuple(row[i - n : i]) == history
        )
        if not follow:
            break
        total, distinct = sum(follow.values()), len(follow)
        p = (follow[token] + distinct * p) / (total + distinct)
    return p


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_follow_the_witten_bell_definition_and_sum_to_one(order: int) -> None:
    lm = NGramLM(vocab_size=5, order=order).fit(ROWS)
    for context in ([], [0], [1, 0], [0, 1, 0], [4], [2, 3, 4]):
        distribution = lm.distribution(context)
        assert float(distribution.sum()) == pytest.approx(1.0, abs=1e-6)
        for token in range(5):
            expected = witten_bell(ROWS, 5, order, context, token)
            assert float(distribution[token]) == pytest.approx(expected, rel=1e-6)
    stream = [0, 1, 0, 2, 4, 1]
    expected_logs = [
        math.log(witten_bell(ROWS, 5, order, stream[max(0, i - order + 1) : i], stream[i]))
        for i in range(1, len(stream))
    ]
    assert lm.token_log_probs(stream).tolist() == pytest.approx(expected_logs, rel=1e-9)


def test_ngrams_never_cross_rows_and_fitting_in_parts_adds_up() -> None:
    together = NGramLM(5, order=3).fit(ROWS)
    parts = NGramLM(5, order=3).fit(ROWS[:1]).fit(ROWS[1:])
    for context in ([], [3], [2, 3], [0, 1]):
        assert torch.equal(together.distribution(context), parts.distribution(context))
    # 3 ends row 0 and 1 starts row 1: "3 -> 1" was never seen, so [3] backs off to unigrams
    assert torch.allclose(together.distribution([3]), together.distribution([]))


def test_counts_beat_a_uniform_guess_on_held_out_python_docs() -> None:
    tokenizer = ByteTokenizer()
    text = "\n".join(d.text for d in python_docs()[:20])
    ids = tokenizer.encode(text)
    cut = int(0.9 * len(ids))
    lm = NGramLM(tokenizer.vocab_size, order=5).fit([ids[:cut]])
    bits_per_byte = -float(lm.token_log_probs(ids[cut:]).mean()) / math.log(2)
    assert bits_per_byte < 3.5  # uniform over bytes: 8; order-0 English: about 4.5


def test_bad_input_is_refused_with_a_clear_error() -> None:
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InvalidInputError, match="vocab_size must be a positive int"):
            NGramLM(vocab_size=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="order must be a positive int"):
            NGramLM(vocab_size=4, order=bad)  # type: ignore[arg-type]
    lm = NGramLM(vocab_size=4)
    with pytest.raises(InvalidInputError, match="iterable of token-id rows"):
        lm.fit("0 1 2")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"row 1 holds token id 4, outside range\(4\)"):
        lm.fit([[0, 1], [2, 4]])
    assert not lm.fitted  # nothing of a refused fit was counted
    with pytest.raises(InvalidInputError, match="row 0 holds 'a'"):
        lm.fit([["a"]])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="at least one token"):
        lm.fit([[], []])
    with pytest.raises(InvalidInputError, match="context holds token id -1"):
        NGramLM(4).fit([[0]]).distribution([-1])
    with pytest.raises(InvalidInputError, match="counts must be an NGramLM"):
        Interpolation("counts")  # type: ignore[arg-type]
    for weight in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(InvalidInputError, match=r"weight must be a number in \[0, 1\]"):
            Interpolation(NGramLM(4).fit([[0]]), weight)  # type: ignore[arg-type]


# ----------------------------------------------------------------- the mixture


@pytest.fixture(scope="module")
def mixed() -> TextGenerator:
    tokenizer = ByteTokenizer()
    counts = NGramLM(tokenizer.vocab_size, order=4).fit([tokenizer.encode(TEXT)])
    model = tiny_model(vocab_size=tokenizer.vocab_size)
    return TextGenerator(model, tokenizer, interpolation=Interpolation(counts, weight=0.9))


def test_the_mixture_steers_sampling_toward_the_counted_phrases(mixed: TextGenerator) -> None:
    plain = TextGenerator(mixed.model, mixed.tokenizer)
    request = TextRequest(prompt="the c", max_new_tokens=24, temperature=0)

    def unseen_4grams(text: str) -> int:  # windows of 4 bytes the count model never saw
        return sum(text[i : i + 4] not in TEXT for i in range(len(text) - 3))

    assert unseen_4grams("the c" + mixed.generate(request).text) == 0
    assert unseen_4grams("the c" + plain.generate(request).text) > 10  # a random GPT babbles


def test_a_mixed_generator_keeps_the_generator_contract(mixed: TextGenerator) -> None:
    requests = [
        TextRequest(prompt="the d", max_new_tokens=10, seed=1, temperature=0.8),
        TextRequest(prompt="on the", max_new_tokens=6, seed=2, logprobs=2),
        TextRequest(prompt="x", max_new_tokens=5, seed=3, repetition_penalty=1.2),
    ]
    passed = check_generator(mixed, requests)
    assert {"batch_matches_single", "stream_matches_generate", "session_matches_generate"} <= set(
        passed
    )


def test_log_prob_and_logprobs_are_the_mixtures(mixed: TextGenerator) -> None:
    assert mixed.interpolation is not None
    text = "the cat sat on the mat"
    ids = mixed.tokenizer.encode(text)
    with torch.no_grad():
        model = mixed.model(torch.tensor([ids[:-1]]))[0].log_softmax(-1).double()
    model_lp = model[torch.arange(len(ids) - 1), ids[1:]]
    counts_lp = mixed.interpolation.counts.token_log_probs(ids)
    expected = torch.log(0.1 * model_lp.exp() + 0.9 * counts_lp.exp()).sum()
    assert float(mixed.log_prob([text])[0]) == pytest.approx(float(expected), rel=1e-5)
    result = mixed.generate(
        TextRequest(prompt="the ca", max_new_tokens=1, temperature=0, logprobs=0)
    )
    assert result.logprobs is not None
    prompt = mixed.tokenizer.encode("the ca")
    with torch.no_grad():
        logits = mixed.model(torch.tensor([prompt]))[0, -1:]
    mixture = mixed.interpolation.mix(logits, [prompt])[0]
    assert result.logprobs[0].logprob == pytest.approx(
        float(mixture[result.token_ids[0]]), rel=1e-5
    )


def test_a_mixed_generator_saves_and_loads_with_its_counts(
    mixed: TextGenerator, tmp_path: Path
) -> None:
    mixed.save(tmp_path / "g")
    loaded = TextGenerator.load(tmp_path / "g")
    assert loaded.interpolation is not None
    assert loaded.interpolation.weight == 0.9
    request = TextRequest(prompt="on the", max_new_tokens=16, seed=4, logprobs=1)
    assert loaded.generate(request) == mixed.generate(request)
    counts = tmp_path / "g" / "interpolation" / "model.safetensors"
    counts.write_bytes(counts.read_bytes()[:-8])  # damaged: refused, naming the file
    with pytest.raises(IntegrityError, match="model.safetensors"):
        TextGenerator.load(tmp_path / "g")


def test_a_mixture_is_refused_where_it_cannot_be_honoured(mixed: TextGenerator) -> None:
    with pytest.raises(InvalidInputError, match="the target has an interpolation"):
        SpeculativeGenerator(mixed, TextGenerator(mixed.model, mixed.tokenizer))
    with pytest.raises(InvalidInputError, match="interpolation must be an Interpolation"):
        TextGenerator(mixed.model, mixed.tokenizer, interpolation="6-gram")  # type: ignore[arg-type]
    wide = Interpolation(NGramLM(mixed.model.config.vocab_size + 1).fit([[0]]))
    with pytest.raises(ConfigError, match="count model has"):
        TextGenerator(mixed.model, mixed.tokenizer, interpolation=wide)


# ------------------------------------------------------- sliding-window log-probs


def test_token_log_probs_with_stride_one_give_each_token_its_full_context() -> None:
    model: GPT = tiny_model(context_length=16)
    stream = torch.randint(0, 256, (70,), generator=torch.Generator().manual_seed(0))
    got = token_log_probs(model, stream, stride=1)
    with torch.no_grad():
        expected = [
            float(model(stream[None, max(0, i - 16) : i])[0, -1].log_softmax(-1)[stream[i]])
            for i in range(1, 70)
        ]
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    coarse = token_log_probs(model, stream)  # stride 4: at least 12 tokens of context
    assert coarse.shape == (69,)
    assert coarse[:16].tolist() == pytest.approx(expected[:16], abs=1e-5)  # the first window
    with pytest.raises(InvalidInputError, match=r"stride must be an int in \[1, 16\]"):
        token_log_probs(model, stream, stride=17)
    with pytest.raises(InvalidInputError, match="at least two tokens"):
        token_log_probs(model, [3])
