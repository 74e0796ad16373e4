"""TextDecodingSession: continuous batching gives each request the tokens it gets alone."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import torch

from genarch.errors import InvalidInputError
from genarch.models import GPT, TextGenerator
from genarch.models.compression import quantize
from genarch.models.generation import PrefixCache, TextDecodingSession
from genarch.protocols import ContinuousBatchingGenerator, DecodingSession
from genarch.schemas import TextRequest, TextResult
from genarch.testing import check_generator
from models.gpt_testing import ByteTokenizer, one_torch_thread, tiny_model


@pytest.fixture(scope="module")
def generator() -> Iterator[TextGenerator]:
    with one_torch_thread():
        yield TextGenerator(tiny_model(), ByteTokenizer())  # context 48


def workload(count: int, seed: int = 0) -> list[TextRequest]:
    """Prompts of 1-40 bytes, 0-60 new tokens (some run into the end of the context),
    greedy and seeded rows, penalties, stop strings and log-probabilities mixed."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        fields: dict[str, object] = {
            "prompt": "".join(rng.choice("abcdefgh ") for _ in range(rng.randint(1, 40))),
            "max_new_tokens": rng.randint(0, 60),
            "seed": i,
        }
        if i % 3 == 0:
            fields["temperature"] = 0
        if i % 5 == 0:
            fields |= {"repetition_penalty": 1.3, "frequency_penalty": 0.5}
        if i % 7 == 0:
            fields["logprobs"] = 2
        if i % 4 == 0:
            fields["stop"] = ("a",)
        requests.append(TextRequest(**fields))
    return requests


def run(
    session: TextDecodingSession, requests: list[TextRequest], joins_per_step: int = 1
) -> tuple[list[TextResult], list[str], int]:
    """Join the requests as rows free up (at most ``joins_per_step`` a step) and step to the end.

    Returns the results and the joined pieces, in request order, and the number of steps.
    """
    waiting = list(enumerate(requests))
    index: dict[int, int] = {}
    pieces: dict[int, list[str]] = {}
    results: dict[int, TextResult] = {}
    steps = 0
    while waiting or session.active_rows:
        for _ in range(joins_per_step):
            if waiting and session.free_rows:
                position, request = waiting.pop(0)
                index[session.join(request)] = position
        for update in session.step():
            pieces.setdefault(index[update.row], []).append(update.piece)
            if update.result is not None:
                results[index[update.row]] = update.result
        steps += 1
    order = range(len(requests))
    return [results[i] for i in order], ["".join(pieces.get(i, [])) for i in order], steps


def assert_same_results(got: list[TextResult], expected: list[TextResult]) -> None:
    for result, alone in zip(got, expected, strict=True):
        assert result.token_ids == alone.token_ids
        assert result.text == alone.text
        assert result.finish_reason == alone.finish_reason
        if alone.logprobs is None:
            assert result.logprobs is None
            continue
        assert result.logprobs is not None
        for mine, theirs in zip(result.logprobs, alone.logprobs, strict=True):
            assert mine.token_id == theirs.token_id
            assert mine.logprob == pytest.approx(theirs.logprob, abs=1e-4)
            assert mine.alternatives.keys() == theirs.alternatives.keys()


def test_rows_that_join_and_leave_get_the_tokens_they_get_alone(generator: TextGenerator) -> None:
    requests = workload(30)
    alone = [generator.generate(r) for r in requests]
    results, pieces, steps = run(generator.open_session(max_rows=4), requests)
    assert_same_results(results, alone)
    assert pieces == [r.text for r in results]  # the pieces join to each row's text
    # 30 requests through 4 rows: far fewer steps than decoding them one after another
    assert steps < sum(len(r.token_ids) + 1 for r in alone) / 2


def test_a_long_running_session_moves_its_rows_left_and_stays_exact(
    generator: TextGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows keep joining, so the shared column runs past twice the context (96) and the
    # session must move every row left; a long prompt joining a young session moves them right.
    shifts: list[int] = []
    original = TextDecodingSession._shift

    def spy(self: TextDecodingSession, by: int) -> None:
        shifts.append(by)
        original(self, by)

    monkeypatch.setattr(TextDecodingSession, "_shift", spy)
    requests = [
        TextRequest(prompt="ab" * (1 + i % 20), max_new_tokens=10 + 7 * (i % 6), temperature=0)
        for i in range(40)
    ]
    alone = [generator.generate(r) for r in requests]
    results, _, _ = run(generator.open_session(max_rows=3), requests)
    assert_same_results(results, alone)
    assert any(by < 0 for by in shifts)  # moved left at the end of the columns
    assert any(by > 0 for by in shifts)  # moved right for a prompt longer than the column


def test_rows_joining_together_share_a_prefill_and_the_prefix_cache(
    generator: TextGenerator,
) -> None:
    prefix_cache = PrefixCache(max_bytes=10_000_000, block_size=8)
    cached = TextGenerator(generator.model, generator.tokenizer, prefix_cache=prefix_cache)
    shared = "The same system prompt, shared. "  # 32 bytes: 4 blocks
    requests = [
        TextRequest(prompt=shared + tail, max_new_tokens=8, seed=i, temperature=0.8)
        for i, tail in enumerate(["one", "two, longer", "3"] * 2)
    ]
    alone = [generator.generate(r) for r in requests]
    # three join at the first step (one prefill), three at the second: those reuse the prefix
    results, _, _ = run(cached.open_session(max_rows=6), requests, joins_per_step=3)
    assert_same_results(results, alone)
    assert prefix_cache.stats().hit_tokens >= 3 * 32


def test_a_quantised_model_and_the_module_path_decode_in_a_session() -> None:
    class Subclassed(GPT):  # not a stock GPT: the step runs through the modules
        pass

    model = Subclassed(tiny_model().config).eval()
    model.load_state_dict(tiny_model().state_dict())
    quantised = quantize(tiny_model(), "int8")  # weight-only: rows stay independent
    for variant in (
        TextGenerator(model, ByteTokenizer()),
        TextGenerator(quantised, ByteTokenizer()),
    ):
        requests = workload(8, seed=1)
        alone = [variant.generate(r) for r in requests]
        results, _, _ = run(variant.open_session(max_rows=3), requests)
        assert_same_results(results, alone)


def test_cancel_frees_a_row_and_close_drops_every_row(generator: TextGenerator) -> None:
    session = generator.open_session(max_rows=2)
    long = session.join(TextRequest(prompt="long", max_new_tokens=40, temperature=0))
    short = session.join(TextRequest(prompt="short", max_new_tokens=3, temperature=0))
    assert session.free_rows == 0
    with pytest.raises(InvalidInputError, match="rows are all busy"):
        session.join(TextRequest(prompt="third"))
    session.step()
    session.cancel(long)
    session.cancel(12345)  # unknown ids are ignored
    assert (session.active_rows, session.free_rows) == (1, 1)
    rows = {u.row for _ in range(5) for u in session.step()}
    assert rows == {short}  # the cancelled row never reports again
    assert session.active_rows == 0
    session.join(TextRequest(prompt="again", max_new_tokens=3))
    session.close()
    assert session.active_rows == 0
    assert session.step() == []


def test_zero_new_tokens_finishes_at_the_first_step(generator: TextGenerator) -> None:
    session = generator.open_session(max_rows=2)
    row = session.join(TextRequest(prompt="nothing", max_new_tokens=0))
    (update,) = session.step()
    assert update.row == row
    assert update.result == generator.generate(TextRequest(prompt="nothing", max_new_tokens=0))
    assert session.active_rows == 0


def test_bad_input_is_refused_at_join_with_a_clear_error(generator: TextGenerator) -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="max_rows must be a positive int"):
            generator.open_session(max_rows=bad)  # type: ignore[arg-type]
    session = generator.open_session(max_rows=2)
    with pytest.raises(InvalidInputError, match="expected a TextRequest"):
        session.join("a prompt")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="context holds 48"):
        session.join(TextRequest(prompt="x" * 49))
    assert session.active_rows == 0  # nothing was half-joined


def test_the_text_generator_is_a_continuous_batching_generator(
    generator: TextGenerator,
) -> None:
    assert isinstance(generator, ContinuousBatchingGenerator)
    assert isinstance(generator.open_session(1), DecodingSession)
    requests = [
        TextRequest(prompt="conformance", max_new_tokens=6, seed=s, temperature=0.9)
        for s in range(3)
    ]
    assert "session_matches_generate" in check_generator(generator, requests)


def test_sessions_leave_torch_state_alone(generator: TextGenerator) -> None:
    generator.model.train()
    try:
        session = generator.open_session(max_rows=1)
        session.join(TextRequest(prompt="hi", max_new_tokens=2))
        session.step()
        assert generator.model.training  # restored after each step
        assert not torch.is_inference_mode_enabled()
    finally:
        generator.model.eval()
