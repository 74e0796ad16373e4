"""PrefixCache: outputs equal plain decoding, LRU eviction under a byte budget, invalidation."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.models import TextGenerator
from genarch.models.generation.prefix_cache import PrefixCache
from genarch.schemas import TextRequest
from models.gpt_testing import VARIANTS, ByteTokenizer, one_torch_thread, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


MODELS = {
    name: tiny_model(seed=3, context_length=96, **fields) for name, fields in VARIANTS.items()
}
PLAIN = {name: TextGenerator(model, ByteTokenizer()) for name, model in MODELS.items()}
PREFIXES = [
    "You are a helpful assistant. Answer briefly.\n",  # 45 bytes: 5 blocks of 8
    "Q: 2+2? A: 4\nQ: 3+3? A: 6\nQ: ",
    "déjà vu — ",  # multi-byte characters across block borders
]
BLOCK = 8


def block_bytes(name: str) -> int:
    config = MODELS[name].config
    return config.n_layer * 2 * config.kv_heads * BLOCK * config.head_dim * 4  # float32


requests = st.builds(
    lambda prefix, suffix, n, temperature, seed: TextRequest(
        prompt=prefix + suffix, max_new_tokens=n, temperature=temperature, seed=seed
    ),
    st.sampled_from(PREFIXES),
    st.text(alphabet="xyz .é", max_size=12),
    st.integers(0, 6),
    st.sampled_from([0.0, 1.0]),
    st.integers(0, 2**16),
)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(MODELS)),
    batches=st.lists(st.lists(requests, min_size=1, max_size=3), min_size=1, max_size=3),
)
def test_outputs_equal_plain_decoding_for_prompts_sharing_prefixes(
    name: str, batches: list[list[TextRequest]]
) -> None:
    cached = TextGenerator(
        MODELS[name], ByteTokenizer(), prefix_cache=PrefixCache(10**6, block_size=BLOCK)
    )
    plain = PLAIN[name]
    for batch in batches:  # later batches find what earlier ones cached
        assert cached.generate_batch(batch) == plain.generate_batch(batch)
        assert [cached.generate(r) for r in batch] == [plain.generate(r) for r in batch]


def test_a_repeated_prefix_is_served_from_the_cache() -> None:
    cache = PrefixCache(10**6, block_size=BLOCK)
    generator = TextGenerator(MODELS["gpt2"], ByteTokenizer(), prefix_cache=cache)
    prompt = PREFIXES[0]  # 45 tokens
    generator.generate(TextRequest(prompt=prompt + "one", max_new_tokens=2))
    assert cache.stats().hit_tokens == 0
    assert cache.stats().entries == 48 // BLOCK
    generator.generate(TextRequest(prompt=prompt + "two", max_new_tokens=2))
    assert cache.stats().hit_tokens == 40  # the 5 whole blocks of the shared 45 tokens
    assert cache.stats().miss_tokens == 48 + 8


def test_the_last_prompt_token_is_always_run_by_the_model() -> None:
    cache = PrefixCache(10**6, block_size=BLOCK)
    generator = TextGenerator(MODELS["gpt2"], ByteTokenizer(), prefix_cache=cache)
    request = TextRequest(prompt="x" * 16, max_new_tokens=3, temperature=0)
    first, second = generator.generate(request), generator.generate(request)
    assert first == second == PLAIN["gpt2"].generate(request)
    assert cache.stats().hit_tokens == 8  # of 16: the second block holds the last token


def test_least_recently_used_blocks_are_evicted_within_the_byte_budget() -> None:
    name = "gpt2"
    cache = PrefixCache(2 * block_bytes(name), block_size=BLOCK)
    generator = TextGenerator(MODELS[name], ByteTokenizer(), prefix_cache=cache)
    a, b, c = ("a" * 8 + "!", "b" * 8 + "!", "c" * 8 + "!")  # one block each
    for prompt in (a, b, a, c):  # a is used again after b: b is the least recently used
        generator.generate(TextRequest(prompt=prompt, max_new_tokens=1))
    stats = cache.stats()
    assert stats.entries == 2
    assert stats.bytes == 2 * block_bytes(name) <= stats.max_bytes
    assert stats.evictions == 1
    namespace = cache.fingerprint(MODELS[name])
    assert cache.lookup(namespace, list(a.encode()), limit=8) is not None
    assert cache.lookup(namespace, list(c.encode()), limit=8) is not None
    assert cache.lookup(namespace, list(b.encode()), limit=8) is None


def test_a_chain_longer_than_the_budget_keeps_its_first_blocks() -> None:
    name = "gpt2"
    cache = PrefixCache(2 * block_bytes(name), block_size=BLOCK)
    generator = TextGenerator(MODELS[name], ByteTokenizer(), prefix_cache=cache)
    prompt = PREFIXES[0]
    generator.generate(TextRequest(prompt=prompt, max_new_tokens=1))
    kv = cache.lookup(cache.fingerprint(MODELS[name]), list(prompt.encode()), limit=44)
    assert kv is not None
    assert kv.shape[3] == 2 * BLOCK  # evicted from the chain's end
    assert cache.stats().bytes <= cache.max_bytes


def test_a_changed_model_never_reuses_stale_keys_and_values() -> None:
    model = copy.deepcopy(MODELS["gpt2"])
    cache = PrefixCache(10**6, block_size=BLOCK)
    generator = TextGenerator(model, ByteTokenizer(), prefix_cache=cache)
    request = TextRequest(prompt=PREFIXES[0], max_new_tokens=6, temperature=0)
    generator.generate(request)
    entries = cache.stats().entries
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        for parameter in model.parameters():
            parameter.mul_(1.5)
    changed = generator.generate(request)
    assert changed == TextGenerator(model, ByteTokenizer()).generate(request)
    assert changed != PLAIN["gpt2"].generate(request)  # the change matters for this prompt
    stats = cache.stats()
    assert stats.invalidations == entries
    assert stats.hit_tokens == 0


def test_another_model_object_with_equal_weights_gets_its_own_entries() -> None:
    cache = PrefixCache(10**6, block_size=BLOCK)
    request = TextRequest(prompt=PREFIXES[1], max_new_tokens=2)
    TextGenerator(MODELS["gpt2"], ByteTokenizer(), prefix_cache=cache).generate(request)
    twin = copy.deepcopy(MODELS["gpt2"])
    TextGenerator(twin, ByteTokenizer(), prefix_cache=cache).generate(request)
    assert cache.stats().hit_tokens == 0
    assert cache.fingerprint(twin) != cache.fingerprint(MODELS["gpt2"])


def test_clear_empties_the_cache() -> None:
    cache = PrefixCache(10**6, block_size=BLOCK)
    TextGenerator(MODELS["gpt2"], ByteTokenizer(), prefix_cache=cache).generate(
        TextRequest(prompt=PREFIXES[0], max_new_tokens=1)
    )
    cache.clear()
    assert (cache.stats().entries, cache.stats().bytes) == (0, 0)


@pytest.mark.parametrize(
    ("max_bytes", "block_size"), [(0, 16), (-5, 16), (True, 16), (1.5, 16), (100, 0), (100, "16")]
)
def test_bad_sizes_are_rejected(max_bytes: object, block_size: object) -> None:
    with pytest.raises(InvalidInputError, match="must be a positive int"):
        PrefixCache(max_bytes, block_size=block_size)  # type: ignore[arg-type]


def test_a_generator_rejects_something_else_as_its_prefix_cache() -> None:
    with pytest.raises(InvalidInputError, match="prefix_cache must be a PrefixCache"):
        TextGenerator(MODELS["gpt2"], ByteTokenizer(), prefix_cache={})  # type: ignore[arg-type]
