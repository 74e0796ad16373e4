"""SpeculativeGenerator: greedy equals the target alone, sampled follows the target's distribution."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.models import GPT, TextGenerator
from genarch.models.generation.prefix_cache import PrefixCache
from genarch.models.generation.sampling import TokenSampler
from genarch.models.generation.speculative import SpeculativeGenerator, _verify
from genarch.schemas import TextRequest
from genarch.testing import check_generator
from models.gpt_testing import VARIANTS, ByteTokenizer, one_torch_thread, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


TARGETS = {
    name: TextGenerator(tiny_model(seed=3, **f), ByteTokenizer()) for name, f in VARIANTS.items()
}
DRAFT = TextGenerator(tiny_model(seed=4, n_layer=1, context_length=40), ByteTokenizer())


def tokens(result: object) -> tuple[object, ...]:
    """What greedy speculation reproduces exactly (log-probabilities only up to rounding)."""
    return (result.token_ids, result.text, result.finish_reason)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(TARGETS)),
    k=st.integers(1, 6),
    prompt=st.text(alphabet="abcdé ", min_size=1, max_size=44),
    n=st.integers(0, 20),
    stop=st.sampled_from([(), ("a",), ("bb",)]),
    self_draft=st.booleans(),
)
def test_greedy_outputs_equal_the_target_alone(
    name: str, k: int, prompt: str, n: int, stop: tuple[str, ...], self_draft: bool
) -> None:
    target = TARGETS[name]
    if len(prompt.encode()) > target.model.config.context_length:
        prompt = prompt[:20]
    speculative = SpeculativeGenerator(target, target if self_draft else DRAFT, num_draft_tokens=k)
    request = TextRequest(prompt=prompt, max_new_tokens=n, temperature=0, stop=list(stop))
    expected = target.generate(request)
    assert tokens(speculative.generate(request)) == tokens(expected)
    assert "".join(speculative.stream(request)) == expected.text


def test_a_draft_that_is_the_target_accepts_every_greedy_proposal() -> None:
    target = TARGETS["gpt2"]
    out = SpeculativeGenerator(target, target, num_draft_tokens=4).generate_with_stats(
        TextRequest(prompt="hello", max_new_tokens=11, temperature=0)
    )
    stats = out.stats
    assert stats.acceptance_rate == 1.0
    assert (stats.emitted, stats.rounds, stats.drafted) == (11, 2, 8)  # 1 + 2 rounds of 4 + 1
    assert stats.target_passes == 3


def test_log_probabilities_are_the_targets() -> None:
    target = TARGETS["rotary-rms-swiglu"]
    request = TextRequest(prompt="log", max_new_tokens=9, temperature=0, logprobs=3)
    got = SpeculativeGenerator(target, DRAFT, num_draft_tokens=3).generate(request)
    expected = target.generate(request)
    assert got.logprobs is not None
    assert expected.logprobs is not None
    for a, b in zip(got.logprobs, expected.logprobs, strict=True):
        assert a.token_id == b.token_id
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert list(a.alternatives) == list(b.alternatives)


def test_conformance_kit_passes() -> None:
    speculative = SpeculativeGenerator(TARGETS["gqa-rotary"], DRAFT, num_draft_tokens=3)
    requests = [
        TextRequest(prompt="Hello", max_new_tokens=8, seed=1),
        TextRequest(prompt="A longer prompt", max_new_tokens=6, seed=2, top_k=20),
    ]
    check_generator(speculative, requests)


def test_penalised_requests_are_decoded_by_the_target_alone() -> None:
    target = TARGETS["gpt2"]
    request = TextRequest(prompt="pen", max_new_tokens=8, seed=5, repetition_penalty=1.3)
    out = SpeculativeGenerator(target, DRAFT).generate_with_stats(request)
    assert out.result == target.generate(request)
    assert out.stats.drafted == 0


def test_prompts_longer_than_the_draft_context_are_decoded_by_the_target() -> None:
    target = TARGETS["gpt2"]  # context 48, the draft's is 40
    request = TextRequest(prompt="z" * 44, max_new_tokens=5, temperature=0)
    out = SpeculativeGenerator(target, DRAFT).generate_with_stats(request)
    assert tokens(out.result) == tokens(target.generate(request))
    assert out.stats.drafted == 0


def test_a_prefix_cache_serves_both_models() -> None:
    target = TextGenerator(
        TARGETS["gpt2"].model, ByteTokenizer(), prefix_cache=PrefixCache(10**6, block_size=8)
    )
    draft = TextGenerator(
        DRAFT.model, ByteTokenizer(), prefix_cache=PrefixCache(10**6, block_size=8)
    )
    speculative = SpeculativeGenerator(target, draft)
    request = TextRequest(prompt="a shared system prompt: hi", max_new_tokens=6, temperature=0)
    first, second = speculative.generate(request), speculative.generate(request)
    assert tokens(first) == tokens(second) == tokens(TARGETS["gpt2"].generate(request))
    assert target.prefix_cache is not None
    assert target.prefix_cache.stats().hit_tokens == 24


# ----------------------------------------------------------------- sampling


def test_the_acceptance_rule_emits_tokens_distributed_as_the_target() -> None:
    p = torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05, 0.0]])
    q = torch.tensor([[0.05, 0.1, 0.1, 0.25, 0.2, 0.3]])  # far from p (total variation 0.6)
    rng = torch.Generator().manual_seed(0)
    sampler = TokenSampler([TextRequest(prompt="x", temperature=1.0)], [rng], torch.device("cpu"))
    draws = 4000
    counts: Counter[int] = Counter()
    proposals = torch.multinomial(q[0], draws, replacement=True, generator=rng).tolist()
    for token in proposals:
        keep, replacement = _verify(sampler, p.log(), q, token, rng)
        counts[token if keep else replacement] += 1
    observed = torch.tensor([counts[i] / draws for i in range(6)])
    assert 0.5 * (observed - p[0]).abs().sum() < 0.05  # sampling noise at 4000 draws: about 0.012
    assert counts[5] == 0  # a token the target rules out is never emitted


class FourLetters:
    """Four tokens, a b c d: a vocabulary small enough to enumerate every continuation."""

    vocab_size = 4

    def encode(self, text: str) -> list[int]:
        return ["abcd".index(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join("abcd"[i] for i in ids)


def peaked_model(seed: int, scale: float) -> GPT:
    model = tiny_model(seed=seed, vocab_size=4, context_length=16, n_layer=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)  # tied: sharper distributions than a fresh model's
    return model


def test_sampled_continuations_follow_the_targets_distribution() -> None:
    target_model, draft_model = peaked_model(7, 5.0), peaked_model(8, -5.0)
    target = TextGenerator(target_model, FourLetters())
    speculative = SpeculativeGenerator(
        target, TextGenerator(draft_model, FourLetters()), num_draft_tokens=2
    )
    prompt = [0, 1, 2]

    def joint(model: GPT) -> dict[tuple[int, ...], float]:  # exact, by enumeration
        out = {}
        with torch.no_grad():
            for seq in itertools.product(range(4), repeat=3):
                idx = torch.tensor([prompt + list(seq)])
                logp = model(idx)[0, len(prompt) - 1 : -1].log_softmax(-1)
                out[seq] = float(logp.gather(1, torch.tensor(seq)[:, None]).sum().exp())
        return out

    expected, draft_alone = joint(target_model), joint(draft_model)
    runs = 800
    counts = Counter(
        speculative.generate(TextRequest(prompt="abc", max_new_tokens=3, seed=s)).token_ids
        for s in range(runs)
    )

    def distance(reference: dict[tuple[int, ...], float]) -> float:
        return 0.5 * sum(abs(counts[seq] / runs - p) for seq, p in reference.items())

    apart = 0.5 * sum(abs(expected[seq] - draft_alone[seq]) for seq in expected)
    assert apart > 0.4  # the draft alone is far off (exactly): the test can tell them apart
    assert distance(expected) < 0.15  # sampling noise at 800 runs: about 0.07


# ---------------------------------------------------------------- bad input


def test_tokenizers_of_different_sizes_are_rejected() -> None:
    other = TextGenerator(tiny_model(vocab_size=4), FourLetters())
    with pytest.raises(InvalidInputError, match="vocab_size 256 against 4"):
        SpeculativeGenerator(TARGETS["gpt2"], other)


def test_tokenizers_that_map_ids_differently_are_rejected() -> None:
    class Reversed(ByteTokenizer):
        def encode(self, text: str) -> list[int]:
            return [255 - b for b in text.encode()]

        def decode(self, ids: Sequence[int]) -> str:
            return bytes(255 - i for i in ids).decode(errors="replace")

    with pytest.raises(InvalidInputError, match="tokenizers differ: id 0"):
        SpeculativeGenerator(TARGETS["gpt2"], TextGenerator(DRAFT.model, Reversed()))


@pytest.mark.parametrize("k", [0, 65, -1, True, 2.0])
def test_a_bad_number_of_draft_tokens_is_rejected(k: object) -> None:
    with pytest.raises(InvalidInputError, match="num_draft_tokens must be an int from 1 to 64"):
        SpeculativeGenerator(TARGETS["gpt2"], DRAFT, num_draft_tokens=k)  # type: ignore[arg-type]


def test_models_instead_of_generators_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="draft must be a TextGenerator"):
        SpeculativeGenerator(TARGETS["gpt2"], DRAFT.model)  # type: ignore[arg-type]


def test_a_bad_request_fails_before_decoding() -> None:
    speculative = SpeculativeGenerator(TARGETS["gpt2"], DRAFT)
    with pytest.raises(InvalidInputError, match="prompt is empty"):
        speculative.generate(TextRequest(prompt="", max_new_tokens=3))
    with pytest.raises(InvalidInputError):
        speculative.generate_batch([TextRequest(prompt="ok"), "not a request"])  # type: ignore[list-item]
