"""The metrics registry and its Prometheus text; EmbeddingService batching, caps, keys."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from genarch.deploy.embedding_service import EmbeddingService
from genarch.deploy.keys import ApiKeyStore
from genarch.deploy.metrics import MetricsRegistry
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import AuthorizationError, CapExceededError
from genarch.errors import InvalidInputError
from genarch.features import HashingVectorizer
from genarch.schemas import TextRequest, TextResult
from genarch.testing import check_endpoint

# name{labels} value, labels being key="escaped value" pairs (Prometheus text format 0.0.4)
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$"
)


def parse_prometheus(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample line: {line!r}"
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
    return samples


class Echo:
    def generate(self, request: TextRequest) -> TextResult:
        return TextResult(text=request.prompt, token_ids=(1, 2))

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        return [self.generate(r) for r in requests]


class CountingVectorizer:
    """A feature extractor that records its batch sizes and refuses the item ``"boom"``."""

    def __init__(self) -> None:
        self.inner = HashingVectorizer(dim=16)
        self.batches: list[int] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        self.batches.append(len(items))
        if "boom" in items:
            raise InvalidInputError("boom is refused")
        return self.inner.extract(items)


def test_prometheus_text_parses_and_escapes_label_values() -> None:
    metrics = MetricsRegistry()
    metrics.counter("jobs_total", "Jobs.").inc(2, kind='a "quoted"\nvalue\\')
    metrics.gauge("depth", "Depth.").set(-1.5)
    metrics.histogram("latency_seconds", "Latency.", (0.1, 1)).observe(0.5, service="x")
    samples = parse_prometheus(metrics.render_prometheus())
    assert samples['jobs_total{kind="a \\"quoted\\"\\nvalue\\\\"}'] == 2
    assert samples["depth"] == -1.5
    assert samples['latency_seconds_bucket{service="x",le="0.1"}'] == 0
    assert samples['latency_seconds_bucket{service="x",le="1"}'] == 1
    assert samples['latency_seconds_bucket{service="x",le="+Inf"}'] == 1
    assert samples['latency_seconds_count{service="x"}'] == 1


def test_a_metric_name_cannot_change_kind() -> None:
    metrics = MetricsRegistry()
    metrics.counter("things", "Things.")
    with pytest.raises(InvalidInputError, match="counter"):
        metrics.histogram("things", "Things.")
    with pytest.raises(InvalidInputError, match="names"):
        metrics.counter("bad name", "x")


def test_a_service_reports_requests_tokens_latency_cache_and_errors() -> None:
    with GenerationService(Echo(), max_wait_ms=0, cache_bytes=10_000, max_new_tokens=5) as service:
        request = TextRequest(prompt="abc", temperature=0, max_new_tokens=2)
        service.generate(request)
        service.generate(request)
        with pytest.raises(CapExceededError):
            service.generate(TextRequest(prompt="abc", max_new_tokens=6))
        samples = parse_prometheus(service.metrics.render_prometheus())
    assert samples['genarch_requests_total{outcome="ok",service="generate"}'] == 2
    assert samples['genarch_requests_total{outcome="error",service="generate"}'] == 1
    assert samples['genarch_errors_total{service="generate",type="CapExceededError"}'] == 1
    assert samples['genarch_cache_hits_total{service="generate"}'] == 1
    assert samples['genarch_cache_misses_total{service="generate"}'] == 1
    assert samples['genarch_tokens_total{kind="prompt",service="generate"}'] == 6
    assert samples['genarch_tokens_total{kind="completion",service="generate"}'] == 4
    assert samples['genarch_request_latency_seconds_count{service="generate"}'] == 2
    assert samples['genarch_batch_size_count{service="generate"}'] == 1  # the hit needs no batch


# ---------------------------------------------------------------- embeddings


def test_embedding_requests_are_batched_and_equal_extracting_alone() -> None:
    extractor = CountingVectorizer()
    requests = [["alpha", "beta"], ["gamma"], ["delta", "epsilon", "zeta"], []]
    barrier = threading.Barrier(len(requests))
    results: list[torch.Tensor | None] = [None] * len(requests)
    with EmbeddingService(extractor, max_batch=16, max_wait_ms=300) as service:

        def call(index: int) -> None:
            barrier.wait()
            results[index] = service.embed(requests[index])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert max(extractor.batches) > 3  # several requests' items in one extract call
    for items, result in zip(requests, results, strict=True):
        assert result is not None
        torch.testing.assert_close(result, extractor.inner.extract(items))


def test_a_failing_embedding_request_does_not_fail_its_companions() -> None:
    with EmbeddingService(CountingVectorizer(), max_wait_ms=300) as service:
        good, bad = service.submit(["fine"]), service.submit(["boom"])
        assert tuple(good.result().shape) == (1, 16)
        with pytest.raises(InvalidInputError, match="boom"):
            bad.result()


def test_embedding_caps_name_the_cap() -> None:
    with EmbeddingService(
        HashingVectorizer(dim=8), max_items=2, max_item_chars=5, max_body_bytes=40, max_wait_ms=0
    ) as service:
        for items, cap in (
            (["a", "b", "c"], "max_items"),
            (["toolong"], "max_item_chars"),
            (["aaaaa"] * 2, None),
        ):
            if cap is None:
                assert tuple(service.embed(items).shape) == (2, 8)
                continue
            with pytest.raises(CapExceededError, match=cap):
                service.embed(items)
        with pytest.raises(InvalidInputError, match="list of texts"):
            service.embed("not a list")  # type: ignore[arg-type]


def test_embedding_needs_the_embed_scope(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path / "keys.json")
    writer = store.create_key("writer", ["generate"])
    indexer = store.create_key("indexer", ["embed"])
    with EmbeddingService(HashingVectorizer(dim=8), keys=store, max_wait_ms=0) as service:
        assert tuple(service.embed(["x"], api_key=indexer).shape) == (1, 8)
        with pytest.raises(AuthorizationError, match="embed"):
            service.embed(["x"], api_key=writer)


def test_embedding_inputs_can_be_redacted() -> None:
    extractor = HashingVectorizer(dim=32)
    with EmbeddingService(extractor, redact_inputs=True, max_wait_ms=0) as service:
        redacted = service.embed(["write to ann@example.com"])
    torch.testing.assert_close(redacted, extractor.extract(["write to <EMAIL_1>"]))


def test_the_embedding_service_keeps_the_endpoint_contract() -> None:
    extractor = HashingVectorizer(dim=8)
    requests = [["hello", "world"], ["again"]]
    expected = [extractor.extract(r) for r in requests]
    check_endpoint(lambda: EmbeddingService(extractor, max_wait_ms=1), requests, expected)
