"""GenerationService: micro-batching, streaming, cancellation, the cache, caps, redaction, drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from genarch.deploy.cache import ResponseCache, cache_key
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import CapExceededError, ServiceClosedError
from genarch.errors import InvalidInputError
from genarch.models import TextGenerator
from genarch.schemas import TextRequest, TextResult
from genarch.testing import check_endpoint
from models.gpt_testing import ByteTokenizer, one_torch_thread, tiny_model


@pytest.fixture(scope="module")
def generator() -> Iterator[TextGenerator]:
    with one_torch_thread():
        yield TextGenerator(tiny_model(), ByteTokenizer())


def mixed_requests() -> list[TextRequest]:
    """Greedy and seeded requests of different lengths, settings and stop conditions."""
    return [
        TextRequest(prompt="hello", max_new_tokens=6, temperature=0),
        TextRequest(prompt="a longer prompt here", max_new_tokens=9, temperature=0.9, seed=1),
        TextRequest(prompt="x", max_new_tokens=4, temperature=0.7, top_k=5, seed=2),
        TextRequest(prompt="stop me", max_new_tokens=12, temperature=0, stop=("e",)),
        TextRequest(
            prompt="penalised",
            max_new_tokens=7,
            temperature=1.2,
            seed=3,
            top_p=0.8,
            repetition_penalty=1.3,
        ),
        TextRequest(prompt="tokens", max_new_tokens=5, temperature=0, stop_token_ids=(32,)),
    ]


class Spy:
    """A text generator that records what it was asked, answers the prompt reversed,
    and fails on the prompt ``"bad"``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def generate(self, request: TextRequest) -> TextResult:
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        with self.lock:
            self.calls.append([r.prompt for r in requests])
        if any(r.prompt == "bad" for r in requests):
            raise InvalidInputError("the prompt 'bad' is refused")
        return [TextResult(text=r.prompt[::-1], token_ids=tuple(range(3))) for r in requests]


class SlowStreamer(Spy):
    """A streaming generator whose stream yields many pieces slowly; counts what it made."""

    def __init__(self) -> None:
        super().__init__()
        self.produced = 0

    def stream(self, request: TextRequest) -> Iterator[str]:
        for _ in range(2000):
            time.sleep(0.001)
            self.produced += 1
            yield "x"


def submit_together(service: GenerationService, requests: list[TextRequest]) -> list[TextResult]:
    """Submit every request from its own thread at the same moment."""
    barrier = threading.Barrier(len(requests))
    results: list[TextResult | None] = [None] * len(requests)

    def call(index: int) -> None:
        barrier.wait()
        results[index] = service.generate(requests[index])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


# ------------------------------------------------------------------ batching


def test_batched_and_unbatched_decoding_give_the_same_tokens(generator: TextGenerator) -> None:
    requests = mixed_requests()
    alone = [generator.generate(r) for r in requests]
    # max_batch = the number of requests and a long wait: the batch goes out when it is
    # full, so a loaded machine (slow threads) cannot split it
    with GenerationService(generator, max_batch=len(requests), max_wait_ms=5000) as batched:
        together = submit_together(batched, requests)
        sizes = batched.metrics.snapshot()["genarch_batch_size"]["values"]['{service="generate"}']
    with GenerationService(generator, max_batch=1, max_wait_ms=0) as unbatched:
        one_by_one = [unbatched.generate(r) for r in requests]
    assert together == alone
    assert one_by_one == alone
    assert sizes["sum"] / sizes["count"] > 1  # the batched service really decoded together


def test_concurrent_submits_are_decoded_in_batches_larger_than_one() -> None:
    spy = Spy()
    with GenerationService(spy, max_batch=8, max_wait_ms=5000) as service:  # full before the wait
        results = submit_together(service, [TextRequest(prompt=f"p{i}") for i in range(8)])
        histogram = service.metrics.snapshot()["genarch_batch_size"]["values"]
    assert [r.text for r in results] == [f"p{i}"[::-1] for i in range(8)]
    assert max(len(call) for call in spy.calls) > 1
    assert histogram['{service="generate"}']["count"] < 8


def test_a_batch_never_exceeds_max_batch() -> None:
    spy = Spy()
    with GenerationService(spy, max_batch=3, max_wait_ms=100) as service:
        submit_together(service, [TextRequest(prompt=f"p{i}") for i in range(7)])
    assert max(len(call) for call in spy.calls) <= 3


def test_a_failing_request_does_not_fail_its_batch_companions() -> None:
    spy = Spy()
    with GenerationService(spy, max_batch=4, max_wait_ms=300) as service:
        futures = [service.submit(TextRequest(prompt=p)) for p in ("ok", "bad", "fine")]
        assert futures[0].result().text == "ko"
        assert futures[2].result().text == "enif"
        with pytest.raises(InvalidInputError, match="refused"):
            futures[1].result()
        errors = service.metrics.snapshot()["genarch_errors_total"]["values"]
    assert errors == {'{service="generate",type="InvalidInputError"}': 1}


def test_the_service_keeps_the_endpoint_contract(generator: TextGenerator) -> None:
    requests = mixed_requests()[:3]
    expected = [generator.generate(r) for r in requests]
    check_endpoint(lambda: GenerationService(generator, max_wait_ms=1), requests, expected)


# ----------------------------------------------------------------- streaming


def test_stream_pieces_join_to_the_generated_text(generator: TextGenerator) -> None:
    request = TextRequest(prompt="naïve café", max_new_tokens=10, temperature=0.8, seed=5)
    with GenerationService(generator, max_wait_ms=0) as service:
        pieces = list(service.stream(request))
    assert "".join(pieces) == generator.generate(request).text


def test_cancelling_a_stream_stops_decoding_and_frees_its_slot() -> None:
    streamer = SlowStreamer()
    with GenerationService(streamer, max_batch=1, max_wait_ms=0) as service:
        stream = service.stream(TextRequest(prompt="go"))
        assert next(stream) == "x"
        assert service.health().busy_slots == 1
        stream.close()
        # the only slot is free again: a waiting request gets it at once
        assert service.generate(TextRequest(prompt="next"), timeout=5).text == "txen"
        produced = streamer.produced
        time.sleep(0.05)
        assert streamer.produced == produced < 2000  # decoding stopped
        assert service.health().busy_slots == 0
        outcomes = service.metrics.snapshot()["genarch_requests_total"]["values"]
    assert outcomes['{outcome="cancelled",service="generate"}'] == 1
    assert list(stream) == []


def test_an_abandoned_stream_is_cancelled_when_collected() -> None:
    streamer = SlowStreamer()
    with GenerationService(streamer, max_batch=1, max_wait_ms=0) as service:
        stream = service.stream(TextRequest(prompt="go"))
        next(stream)
        del stream
        assert service.generate(TextRequest(prompt="ab"), timeout=5).text == "ba"
    assert streamer.produced < 2000


# --------------------------------------------------------------------- cache


def test_cached_responses_equal_uncached_ones(generator: TextGenerator) -> None:
    requests = [r for r in mixed_requests() if r.temperature == 0 or r.seed is not None]
    with GenerationService(generator, max_wait_ms=0, cache_bytes=1_000_000) as service:
        first = [service.generate(r) for r in requests]
        second = [service.generate(r) for r in requests]
        hits = service.metrics.snapshot()["genarch_cache_hits_total"]["values"]
    assert first == second == [generator.generate(r) for r in requests]
    assert hits == {'{service="generate"}': len(requests)}


def test_unseeded_sampling_is_never_served_from_the_cache() -> None:
    spy = Spy()
    request = TextRequest(prompt="again", temperature=0.8)  # sampled, no seed
    with GenerationService(spy, max_wait_ms=0, cache_bytes=1_000_000) as service:
        for _ in range(3):
            service.generate(request)
        assert service.cache is not None
        assert len(service.cache) == 0
    assert len(spy.calls) == 3


def test_a_deterministic_request_is_answered_once() -> None:
    spy = Spy()
    request = TextRequest(prompt="again", temperature=0.8, seed=7)
    with GenerationService(spy, max_wait_ms=0, cache_bytes=1_000_000) as service:
        assert service.generate(request) == service.generate(request)
        assert "".join(service.stream(request)) == "niaga"  # a hit streams as one piece
    assert len(spy.calls) == 1


def test_the_cache_key_covers_the_model_version_and_every_field() -> None:
    request = TextRequest(prompt="p", temperature=0)
    assert cache_key("m@1", request) != cache_key("m@2", request)
    assert cache_key("m@1", request) != cache_key("m@1", request.model_copy(update={"top_k": 3}))
    assert cache_key("m@1", request) == cache_key("m@1", TextRequest(temperature=0, prompt="p"))


def test_the_cache_evicts_the_least_recently_used_within_its_byte_budget() -> None:
    result = TextResult(text="x" * 100)
    size = len(result.model_dump_json().encode())
    cache = ResponseCache(max_bytes=2 * size)
    a, b, c = (TextRequest(prompt=p, temperature=0) for p in "abc")
    cache.put("m", a, result)
    cache.put("m", b, result)
    assert cache.get("m", a) is not None  # a is now the most recent
    cache.put("m", c, result)
    assert cache.get("m", b) is None
    assert cache.get("m", a) is not None
    assert cache.size_bytes <= 2 * size
    assert not cache.put("m", a, TextResult(text="y" * 10 * size))  # larger than the budget


# ---------------------------------------------------------------------- caps


@pytest.mark.parametrize(
    ("cap", "request_fields"),
    [
        ("max_new_tokens", {"prompt": "hi", "max_new_tokens": 11}),
        (
            "max_prompt_tokens",
            {"prompt": "é" * 6, "max_new_tokens": 3},
        ),  # 12 UTF-8 bytes: 12 byte tokens
        ("max_body_bytes", {"prompt": "y" * 400, "max_new_tokens": 3}),
    ],
)
def test_a_request_over_a_cap_is_refused_naming_the_cap(
    generator: TextGenerator, cap: str, request_fields: dict[str, object]
) -> None:
    caps = {"max_new_tokens": 10, "max_prompt_tokens": 10, "max_body_bytes": 500}
    with GenerationService(generator, max_wait_ms=0, **caps) as service:
        with pytest.raises(CapExceededError, match=cap) as caught:
            service.submit(TextRequest(**request_fields))  # type: ignore[arg-type]
        assert isinstance(caught.value, InvalidInputError)
        assert caught.value.cap == cap
        assert service.generate(
            TextRequest(prompt="hi", max_new_tokens=3)
        ).token_ids  # still serves


def test_invoke_batch_over_max_batch_size_is_refused() -> None:
    with GenerationService(Spy(), max_batch_size=2, max_wait_ms=0) as service:
        with pytest.raises(CapExceededError, match="max_batch_size"):
            service.invoke_batch([TextRequest(prompt="a")] * 3)
        assert [r.text for r in service.invoke_batch([TextRequest(prompt="ab")] * 2)] == ["ba"] * 2


def test_check_body_size_refuses_a_large_body_for_an_http_layer() -> None:
    with GenerationService(Spy(), max_body_bytes=100, max_wait_ms=0) as service:
        service.check_body_size(100)
        with pytest.raises(CapExceededError, match="max_body_bytes=100"):
            service.check_body_size(2_000_000)


def test_a_request_that_is_not_a_text_request_is_refused() -> None:
    with (
        GenerationService(Spy(), max_wait_ms=0) as service,
        pytest.raises(InvalidInputError, match="expected a TextRequest"),
    ):
        service.submit("hello")  # type: ignore[arg-type]


# ----------------------------------------------------------------- redaction


def test_prompts_are_redacted_before_they_reach_the_model() -> None:
    spy = Spy()
    with GenerationService(spy, max_wait_ms=0, redact_prompts=True) as service:
        service.generate(TextRequest(prompt="mail ann@example.com now"))
    assert spy.calls == [["mail <EMAIL_1> now"]]


def test_outputs_are_redacted_before_they_are_returned_or_streamed() -> None:
    spy = Spy()  # answers the prompt reversed
    leaked = "moc.elpmaxe@nna"  # reversed: ann@example.com
    with GenerationService(spy, max_wait_ms=0, redact_outputs=True) as service:
        result = service.generate(TextRequest(prompt=leaked))
        streamed = "".join(service.stream(TextRequest(prompt=leaked)))
    assert result.text == streamed == "<EMAIL_1>"
    assert result.logprobs is None


# --------------------------------------------------------------------- drain


def test_close_drains_queued_requests_then_refuses_new_ones() -> None:
    service = GenerationService(Spy(), max_batch=2, max_wait_ms=10_000)
    futures = [service.submit(TextRequest(prompt=f"q{i}")) for i in range(5)]
    service.close()
    assert [f.result(timeout=0).text for f in futures] == [f"q{i}"[::-1] for i in range(5)]
    health = service.health()
    assert (health.ready, health.status, health.requests) == (False, "closed", 5)
    with pytest.raises(ServiceClosedError):
        service.submit(TextRequest(prompt="late"))
    service.close()  # idempotent
