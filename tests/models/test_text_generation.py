"""TextGenerator: the conformance kit, the KV cache, batching, sampling, stopping, streaming."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genarch._io import write_manifest
from genarch.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from genarch.models import GPT, IncrementalDetokenizer, TextGenerator
from genarch.protocols import Generator, ScoringGenerator, StreamingGenerator
from genarch.schemas import TextRequest
from genarch.testing import check_generator
from models.gpt_testing import SONG, ByteTokenizer, memorised_model, one_torch_thread, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


MODEL = tiny_model(seed=0)
GENERATOR = TextGenerator(MODEL, ByteTokenizer())
GQA_ROTARY = TextGenerator(
    tiny_model(seed=1, n_head=4, n_kv_head=2, positions="rotary", norm="rmsnorm", mlp="swiglu"),
    ByteTokenizer(),
)


@functools.cache
def reciter() -> TextGenerator:
    return TextGenerator(memorised_model(), ByteTokenizer())


def greedy(prompt: str, n: int = 12, **fields: object) -> TextRequest:
    return TextRequest(prompt=prompt, max_new_tokens=n, temperature=0.0, **fields)  # type: ignore[arg-type]


def naive_greedy(model: GPT, prompt: list[int], n: int) -> list[int]:
    """nanoGPT's loop: recompute the whole context for every new token."""
    idx = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(n):
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx[0, len(prompt) :].tolist()


# ------------------------------------------------------------------ conformance

REQUESTS = [
    TextRequest(prompt="Hello", max_new_tokens=8, seed=1),
    TextRequest(prompt="A much longer prompt than the first", max_new_tokens=6, seed=2, top_k=20),
    TextRequest(prompt="héllo 世界", max_new_tokens=10, seed=3, top_p=0.9, temperature=0.8),
    TextRequest(prompt="x", max_new_tokens=5, seed=4, min_p=0.05, logprobs=3),
    TextRequest(
        prompt="rep", max_new_tokens=7, seed=5, repetition_penalty=1.3, presence_penalty=0.5
    ),
    greedy("greedy", 9, frequency_penalty=0.7, stop=("zz",), seed=6),
]
INVALID = [
    TextRequest(prompt=""),
    TextRequest(prompt="x" * 49, max_new_tokens=1),
    TextRequest.model_construct(prompt="x", temperature=float("nan")),
    TextRequest.model_construct(prompt="x", frequency_penalty=float("inf")),
    TextRequest.model_construct(prompt="x", max_new_tokens=-1),
    TextRequest.model_construct(prompt="x", top_p=0.0),
    TextRequest.model_construct(prompt="x", top_p=1.5),
    TextRequest(prompt="x", stop_token_ids=(256,)),
]


@pytest.mark.parametrize("generator", [GENERATOR, GQA_ROTARY], ids=["gpt2", "gqa-rotary"])
def test_text_generator_passes_the_conformance_kit(generator: TextGenerator) -> None:
    passed = check_generator(generator, REQUESTS, invalid_requests=INVALID, atol=1e-5)
    assert {"save_load_roundtrip", "stream_matches_generate", "batch_matches_single"} <= set(passed)


def test_text_generator_implements_the_optional_protocols() -> None:
    assert isinstance(GENERATOR, Generator)
    assert isinstance(GENERATOR, StreamingGenerator)
    assert isinstance(GENERATOR, ScoringGenerator)
    # ...and keeps their promises, not only their names
    scores = GENERATOR.log_prob(["hello", "hi there"])
    assert scores.dtype == torch.float64
    assert scores.shape == (2,)
    assert bool(torch.isfinite(scores).all())
    assert bool((scores < 0).all())
    request = TextRequest(prompt="hi", max_new_tokens=6, seed=3)
    assert "".join(GENERATOR.stream(request)) == GENERATOR.generate(request).text


# --------------------------------------------------------------- the engine


@pytest.mark.parametrize("generator", [GENERATOR, GQA_ROTARY], ids=["gpt2", "gqa-rotary"])
@pytest.mark.parametrize("prompt", ["a", "Hello there", "héllo 世界 and more"])
def test_cached_greedy_decoding_equals_recomputing_the_context(
    generator: TextGenerator, prompt: str
) -> None:
    ids = list(prompt.encode())
    result = generator.generate(greedy(prompt, 20))
    assert list(result.token_ids) == naive_greedy(generator.model, ids, 20)


def test_a_batch_of_different_lengths_equals_each_prompt_alone() -> None:
    requests = [
        greedy("a", 15),
        TextRequest(prompt="a much longer prompt", max_new_tokens=12, seed=7, top_k=5),
        greedy("mid length", 20, logprobs=2),
        TextRequest(prompt="zz", max_new_tokens=3, seed=8, temperature=1.5),
        greedy("\x00a", 10, repetition_penalty=50.0),  # id 0 is also the padding id
    ]
    for generator in (GENERATOR, GQA_ROTARY):
        alone = [generator.generate(r) for r in requests]
        together = generator.generate_batch(requests)
        for a, b in zip(alone, together, strict=True):
            assert b.token_ids == a.token_ids
            assert b.text == a.text
            assert b.finish_reason == a.finish_reason
        batched_logprobs = [lp.logprob for lp in together[2].logprobs or ()]
        assert batched_logprobs == pytest.approx(
            [lp.logprob for lp in alone[2].logprobs or ()], abs=1e-5
        )


def test_generate_batch_splits_into_max_batch_size_chunks() -> None:
    small = TextGenerator(MODEL, ByteTokenizer(), max_batch_size=2)
    requests = [greedy(p, 5) for p in ["one", "two", "three", "four", "five"]]
    assert small.generate_batch(requests) == GENERATOR.generate_batch(requests)


def test_the_same_seed_gives_the_same_text_and_other_seeds_differ() -> None:
    request = TextRequest(prompt="Once", max_new_tokens=20, seed=11)
    first = GENERATOR.generate(request)
    torch.manual_seed(123)  # the global RNG plays no part
    assert GENERATOR.generate(request) == first
    others = {
        GENERATOR.generate(request.model_copy(update={"seed": s})).token_ids for s in range(5)
    }
    assert len(others) > 1


def test_a_torch_generator_can_drive_sampling() -> None:
    request = TextRequest(prompt="Once", max_new_tokens=10)
    first = GENERATOR.generate(request, generator=torch.Generator().manual_seed(5))
    second = GENERATOR.generate(request, generator=torch.Generator().manual_seed(5))
    assert first == second
    seeded = GENERATOR.generate(request.model_copy(update={"seed": 5}))
    assert seeded == first  # a seed is shorthand for a generator seeded with it


def test_unseeded_requests_sample_afresh() -> None:
    request = TextRequest(prompt="Once", max_new_tokens=20)
    assert len({GENERATOR.generate(request).token_ids for _ in range(4)}) > 1


@pytest.mark.parametrize(
    "fields", [{"top_k": 1}, {"top_p": 1e-6}, {"min_p": 0.999}, {"temperature": 1e-4}]
)
def test_settings_that_leave_one_candidate_are_greedy(fields: dict[str, object]) -> None:
    request = TextRequest(prompt="Hello", max_new_tokens=15, seed=3, **fields)  # type: ignore[arg-type]
    assert (
        GENERATOR.generate(request).token_ids == GENERATOR.generate(greedy("Hello", 15)).token_ids
    )


def first_token_distribution(prompt: str) -> torch.Tensor:
    with torch.no_grad():
        return MODEL(torch.tensor([list(prompt.encode())]))[0, -1].softmax(-1)


def first_tokens(**fields: object) -> set[int]:
    request = TextRequest(prompt="Hi", max_new_tokens=1, **fields)  # type: ignore[arg-type]
    return {
        GENERATOR.generate(request.model_copy(update={"seed": s})).token_ids[0] for s in range(60)
    }


def test_top_k_samples_only_the_k_most_likely_tokens() -> None:
    allowed = set(first_token_distribution("Hi").topk(3).indices.tolist())
    sampled = first_tokens(top_k=3, temperature=5.0)
    assert sampled <= allowed
    assert len(sampled) == 3


def test_top_p_samples_only_from_the_nucleus() -> None:
    probs, order = first_token_distribution("Hi").sort(descending=True)
    nucleus = order[: int((probs.cumsum(0) < 0.05).sum()) + 1].tolist()
    sampled = first_tokens(top_p=0.05)
    assert sampled <= set(nucleus)
    assert len(sampled) > 1


def test_min_p_drops_tokens_below_the_fraction_of_the_best() -> None:
    probs = first_token_distribution("Hi")
    allowed = set(torch.nonzero(probs >= 0.9 * probs.max()).flatten().tolist())
    assert first_tokens(min_p=0.9) <= allowed


def test_temperature_zero_is_greedy_and_high_temperature_spreads() -> None:
    assert len(first_tokens(temperature=0.0)) == 1
    assert len(first_tokens(temperature=10.0)) > 30


@pytest.mark.parametrize("field", ["presence_penalty", "frequency_penalty"])
def test_a_large_presence_or_frequency_penalty_prevents_repeats(field: str) -> None:
    tokens = GENERATOR.generate(greedy("Hi", 40, **{field: 1e4})).token_ids
    assert len(set(tokens)) == len(tokens)


def test_a_large_repetition_penalty_avoids_prompt_and_output_tokens() -> None:
    prompt = "abcabc"
    tokens = GENERATOR.generate(greedy(prompt, 20, repetition_penalty=1e6)).token_ids
    assert len(set(tokens)) == len(tokens)
    assert not set(tokens) & set(prompt.encode())


def test_penalties_change_greedy_output() -> None:
    plain = GENERATOR.generate(greedy("Hi", 40)).token_ids
    assert GENERATOR.generate(greedy("Hi", 40, frequency_penalty=2.0)).token_ids != plain


# ------------------------------------------------------------------ stopping


def test_max_new_tokens_bounds_the_output() -> None:
    result = GENERATOR.generate(greedy("Hi", 7))
    assert len(result.token_ids) == 7
    assert result.finish_reason == "length"
    empty = GENERATOR.generate(greedy("Hi", 0))
    assert (empty.text, empty.token_ids, empty.finish_reason) == ("", (), "length")


def test_generation_ends_at_the_end_of_the_context() -> None:
    result = GENERATOR.generate(greedy("x" * 40, 20))
    assert len(result.token_ids) == 48 - 40 + 1  # the last one is predicted from a full context
    assert result.finish_reason == "end"


def test_a_prompt_that_fills_the_context_gets_one_token_as_in_transformers() -> None:
    result = GENERATOR.generate(greedy("x" * 48, 5))
    assert len(result.token_ids) == 1
    assert result.finish_reason == "end"
    with torch.no_grad():
        assert result.token_ids[0] == MODEL(torch.tensor([list(b"x" * 48)]))[0, -1].argmax()


def test_a_batch_with_a_prompt_that_fills_the_context_equals_each_prompt_alone() -> None:
    requests = [greedy("x" * 48, 5), greedy("short", 5), greedy("y" * 45, 9)]
    assert GENERATOR.generate_batch(requests) == [GENERATOR.generate(r) for r in requests]


def test_a_stop_token_ends_generation_and_is_not_in_the_text() -> None:
    plain = GENERATOR.generate(greedy("Hi", 20))
    stop = plain.token_ids[5]
    first = plain.token_ids.index(stop)
    result = GENERATOR.generate(greedy("Hi", 20, stop_token_ids=(stop,)))
    assert result.finish_reason == "stop"
    assert result.token_ids == plain.token_ids[: first + 1]
    assert result.text == ByteTokenizer().decode(plain.token_ids[:first])


def test_a_stop_string_cuts_the_text_before_it() -> None:
    song = reciter().generate(greedy("naïve", 20))
    assert song.text.startswith(" café — 猫")
    result = reciter().generate(greedy("naïve", 20, stop=("猫が", "zzz")))
    assert result.finish_reason == "stop"
    assert result.text == " café — "
    assert ByteTokenizer().decode(result.token_ids) == " café — 猫が"  # tokens up to the stop


# ----------------------------------------------------------------- streaming


def test_streaming_never_splits_a_multibyte_character() -> None:
    request = greedy("naïve", 24)
    pieces = list(reciter().stream(request))
    assert "".join(pieces) == reciter().generate(request).text == " café — 猫がいる."
    assert len(pieces) >= 8  # it really streams
    assert all("\ufffd" not in piece for piece in pieces)


def test_streaming_holds_back_text_that_may_start_a_stop_string() -> None:
    request = greedy("naïve", 24, stop=("— 犬",))
    pieces = list(reciter().stream(request))
    assert "".join(pieces) == reciter().generate(request).text == " café — 猫がいる."
    # "—" is released only once "猫" has ruled the stop string out.
    assert not any(piece.endswith(("—", "— ")) for piece in pieces)


def test_a_paused_stream_leaves_grad_mode_and_the_training_flag_alone() -> None:
    model = tiny_model().train()
    stream = TextGenerator(model, ByteTokenizer()).stream(greedy("Hi", 10))
    next(stream)
    assert torch.is_grad_enabled()
    assert not torch.is_inference_mode_enabled()
    assert model.training
    list(stream)


def test_stream_validates_the_request_at_once() -> None:
    with pytest.raises(InvalidInputError):
        GENERATOR.stream(TextRequest(prompt=""))


@given(text=st.text(max_size=30), stop=st.lists(st.text(min_size=1, max_size=3), max_size=2))
def test_incremental_detokenizer_pieces_join_to_the_text(text: str, stop: list[str]) -> None:
    detokenizer = IncrementalDetokenizer(ByteTokenizer(), stop)
    pieces = []
    for byte in text.encode():
        if detokenizer.push(byte):
            break
        pieces.append(detokenizer.ready())
    pieces.append(detokenizer.flush())
    cut = min([i for i in (text.find(s) for s in stop) if i >= 0], default=len(text))
    assert "".join(pieces) == detokenizer.text == text[:cut]
    assert all("\ufffd" not in piece for piece in pieces)


# -------------------------------------------------------------------- scoring


def test_log_prob_sums_the_token_log_probabilities() -> None:
    text = "Hello world"
    ids = torch.tensor([list(text.encode())])
    with torch.no_grad():
        logprobs = MODEL(ids[:, :-1]).log_softmax(-1).gather(2, ids[:, 1:, None])
    scores = GENERATOR.log_prob([text])
    assert scores.dtype == torch.float64
    assert scores.shape == (1,)
    assert scores.item() == pytest.approx(logprobs.sum().item(), abs=1e-4)


def test_log_prob_of_a_batch_equals_each_text_alone() -> None:
    texts = ["a", "", "short", "a somewhat longer text, ünïcode"]
    batch = GENERATOR.log_prob(texts)
    alone = torch.cat([GENERATOR.log_prob([t]) for t in texts])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-6)
    assert batch[0] == batch[1] == 0.0  # nothing to score without a context token


def test_a_trained_model_prefers_what_it_learned() -> None:
    learned, shuffled = reciter().log_prob([SONG, "".join(sorted(SONG))])
    assert learned > shuffled + 20


@pytest.mark.parametrize("samples", ["a single string", [1, 2], ["x" * 49]])
def test_log_prob_rejects_bad_samples(samples: object) -> None:
    with pytest.raises(InvalidInputError):
        GENERATOR.log_prob(samples)  # type: ignore[arg-type]


def test_logprobs_report_the_chosen_token_and_its_alternatives() -> None:
    result = GENERATOR.generate(greedy("Hello", 6, logprobs=3))
    assert result.logprobs is not None
    assert len(result.logprobs) == len(result.token_ids)
    prompt = list(b"Hello")
    with torch.no_grad():
        expected = MODEL(torch.tensor([prompt]))[0, -1].log_softmax(-1)
    first = result.logprobs[0]
    assert first.token_id == result.token_ids[0]
    assert first.logprob == pytest.approx(expected.max().item(), abs=1e-5)  # greedy picks the best
    assert len(first.alternatives) == 3
    assert list(first.alternatives) == expected.topk(3).indices.tolist()
    assert GENERATOR.generate(greedy("Hello", 6)).logprobs is None


# --------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (TextRequest(prompt=""), "empty"),
        (TextRequest(prompt="x" * 49, max_new_tokens=1), "49 tokens long"),
        (TextRequest.model_construct(prompt="x", max_new_tokens=-1), "max_new_tokens"),
        (TextRequest.model_construct(prompt="x", top_p=0.0), "top_p"),
        (TextRequest.model_construct(prompt="x", top_p=1.01), "top_p"),
        (TextRequest(prompt="x", stop_token_ids=(999,)), "stop_token_ids"),
        (TextRequest(prompt="x", seed=2**70), "seed"),
        ("just a string", "TextRequest"),
    ],
)
def test_bad_requests_raise_invalid_input(request_: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        GENERATOR.generate(request_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields", [{"max_new_tokens": -1}, {"top_p": 0.0}, {"top_p": 1.5}, {"temperature": -1.0}]
)
def test_bad_settings_are_refused_when_the_request_is_built(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        TextRequest(prompt="x", **fields)  # type: ignore[arg-type]


def test_a_bad_request_in_a_batch_fails_before_any_decoding() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        GENERATOR.generate_batch([greedy("fine"), TextRequest(prompt="")])


def test_a_tokenizer_larger_than_the_vocabulary_is_refused() -> None:
    class Wide(ByteTokenizer):
        vocab_size = 300

    with pytest.raises(ConfigError, match="300"):
        TextGenerator(MODEL, Wide())


def test_generation_restores_the_models_training_flag() -> None:
    model = tiny_model(dropout=0.3).train()
    TextGenerator(model, ByteTokenizer()).generate(greedy("Hi", 3))
    assert model.training


# ---------------------------------------------------------------- persistence


def test_save_writes_safetensors_and_json(tmp_path: Path) -> None:
    GENERATOR.save(tmp_path / "g")
    files = sorted(
        str(p.relative_to(tmp_path / "g")) for p in (tmp_path / "g").rglob("*") if p.is_file()
    )
    assert files == [
        "SHA256SUMS",
        "generator.json",
        "model/SHA256SUMS",
        "model/config.json",
        "model/model.safetensors",
        "tokenizer/tokenizer.json",
    ]
    document = json.loads((tmp_path / "g" / "generator.json").read_text())
    assert document["tokenizer"] == "models.gpt_testing:ByteTokenizer"


def test_load_of_an_empty_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        TextGenerator.load(tmp_path)


def test_load_never_imports_a_module_named_in_the_file(tmp_path: Path) -> None:
    GENERATOR.save(tmp_path / "g")
    document = json.loads((tmp_path / "g" / "generator.json").read_text())
    document["tokenizer"] = "some_module_not_imported:Tokenizer"
    (tmp_path / "g" / "generator.json").write_text(json.dumps(document))
    write_manifest(tmp_path / "g")  # consistent, so the import guard is what refuses it
    with pytest.raises(IntegrityError, match="not imported"):
        TextGenerator.load(tmp_path / "g")


def test_saving_needs_a_persistable_tokenizer(tmp_path: Path) -> None:
    class Plain:
        vocab_size = 256

        def encode(self, text: str) -> list[int]:
            return list(text.encode())

        def decode(self, ids: list[int]) -> str:
            return bytes(ids).decode(errors="replace")

    with pytest.raises(InvalidInputError, match="save"):
        TextGenerator(MODEL, Plain()).save(tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_a_save_interrupted_between_its_two_renames_still_loads(tmp_path: Path) -> None:
    GENERATOR.save(tmp_path / "g")
    # the old copy moved aside, the new one not yet in place:
    (tmp_path / "g").rename(tmp_path / ".g.old-1-2")
    request = TextRequest(prompt="Hi", max_new_tokens=4, seed=0)
    assert TextGenerator.load(tmp_path / "g").generate(request) == GENERATOR.generate(request)


def test_a_save_of_the_first_release_loads(tmp_path: Path) -> None:
    """The layout and format strings are those of the first release, so its saves load."""
    MODEL.save(tmp_path / "g" / "model")
    ByteTokenizer().save(tmp_path / "g" / "tokenizer")
    document = {"format": "genarch.TextGenerator", "tokenizer": "models.gpt_testing:ByteTokenizer",
                "max_batch_size": 3}  # fmt: skip
    (tmp_path / "g" / "generator.json").write_text(json.dumps(document))
    loaded = TextGenerator.load(tmp_path / "g")
    assert loaded.max_batch_size == 3
    request = TextRequest(prompt="Hi", max_new_tokens=4, seed=0)
    assert loaded.generate(request) == GENERATOR.generate(request)


def test_a_save_missing_its_model_is_an_integrity_error_naming_the_path(tmp_path: Path) -> None:
    GENERATOR.save(tmp_path / "g")
    for file in (tmp_path / "g" / "model").iterdir():
        file.unlink()
    (tmp_path / "g" / "model").rmdir()
    with pytest.raises(
        IntegrityError, match=r"genarch\.TextGenerator.*model/config.json is missing"
    ):
        TextGenerator.load(tmp_path / "g")
    write_manifest(tmp_path / "g")  # consistent, so loading the model is what fails
    with pytest.raises(IntegrityError, match=r"genarch\.TextGenerator.*incomplete"):
        TextGenerator.load(tmp_path / "g")
