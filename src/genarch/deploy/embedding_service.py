"""The serving core for embeddings: :class:`EmbeddingService`, in process, no HTTP.

A request is a list of texts; the answer is their ``(N, dim)`` feature
tensor. The worker thread gathers the items of the requests that arrive
within ``max_wait_ms`` (up to ``max_batch`` items) into *one* ``extract``
call and hands each request its rows. That is exact: the
:class:`~genarch.protocols.FeatureExtractor` contract makes row ``i`` depend
only on item ``i`` (up to float rounding). A request with more items than
``max_batch`` runs alone.

At the door, as for generation: the key and its ``embed`` scope, the caps
(items per request, characters per item, body size), the caller's buckets
(one request, and the items' tokens). There is no response cache.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Self

import torch

from genarch.data.pii_redaction import PiiRedactor
from genarch.deploy.admission import ServiceGate, count_tokens, find_tokenizer, service_health
from genarch.deploy.batching import Job, MicroBatcher
from genarch.deploy.keys import ApiKeyStore
from genarch.deploy.limits import RateLimiter
from genarch.deploy.metrics import MetricsRegistry
from genarch.deploy.serving_errors import CapExceededError, ServiceClosedError
from genarch.deploy.serving_records import EmbeddingServiceConfig, ServiceHealth
from genarch.errors import GenarchError, IntegrityError, InvalidInputError
from genarch.protocols import FeatureExtractor, Tokenizer
from genarch.validation import describe

__all__ = ["EmbeddingService"]

NAME = "embed"


@dataclass(frozen=True)
class _Pending:
    items: list[str]
    tokens: int
    started: float


class EmbeddingService:
    """Serves a text :class:`~genarch.protocols.FeatureExtractor` with batching, caps, keys
    and metrics.

    An :class:`~genarch.protocols.Endpoint` ``[Sequence[str], Tensor]``:
    ``invoke(items)`` is :meth:`embed`.

    Args:
        extractor: any ``FeatureExtractor[str]``; only the worker thread calls it.
        config: an :class:`~genarch.deploy.EmbeddingServiceConfig`; keyword
            arguments are shorthand for its fields.
        keys: the API key store; ``None`` serves without keys.
        limiter: per-key token buckets; ``None`` applies none.
        redactor: replaces PII in items when ``redact_inputs`` is set
            (default: a :class:`~genarch.data.PiiRedactor` in placeholder mode).
        metrics: the registry to report to (default: a new one, ``.metrics``).
        model_version: reported by ``health()`` (default: the class name and a random id).
        tokenizer: counts tokens for the token bucket (default: the
            extractor's ``tokenizer``; else UTF-8 bytes).

    Raises:
        ConfigError: a config value out of range.
        InvalidInputError: ``extractor`` is not a FeatureExtractor.

    Examples:
        >>> from genarch.features import HashingVectorizer
        >>> with EmbeddingService(HashingVectorizer(dim=8), max_wait_ms=0) as service:
        ...     tuple(service.embed(["hello", "world"]).shape)
        (2, 8)
    """

    def __init__(
        self,
        extractor: FeatureExtractor[str],
        config: EmbeddingServiceConfig | Mapping[str, Any] | None = None,
        *,
        keys: ApiKeyStore | None = None,
        limiter: RateLimiter | None = None,
        redactor: PiiRedactor | None = None,
        metrics: MetricsRegistry | None = None,
        model_version: str | None = None,
        tokenizer: Tokenizer | None = None,
        **fields: Any,
    ) -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise InvalidInputError(
                f"EmbeddingService needs a FeatureExtractor (dim, extract), got {describe(extractor)}"
            )
        self.config = EmbeddingServiceConfig.resolve(config, fields)
        self._extractor = extractor
        self._tokenizer = find_tokenizer(extractor, tokenizer)
        self.model_version = model_version or f"{type(extractor).__name__}-{uuid.uuid4().hex[:12]}"
        self.metrics = metrics or MetricsRegistry()
        self._redactor = redactor or (PiiRedactor() if self.config.redact_inputs else None)
        self._gate = ServiceGate(NAME, self.metrics, keys, limiter)
        self._batcher = MicroBatcher(
            NAME,
            self._run_batch,
            max_batch=self.config.max_batch,
            max_wait_s=self.config.max_wait_ms / 1000,
            metrics=self.metrics,
        )

    def __repr__(self) -> str:
        return f"EmbeddingService({type(self._extractor).__name__}, {self.health().status})"

    @property
    def dim(self) -> int:
        """The served extractor's feature dimension."""
        return self._extractor.dim

    def _prepare(self, items: object) -> _Pending:
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise InvalidInputError(
                f"an embedding request is a list of texts, got {describe(items)}"
            )
        config = self.config
        if len(items) > config.max_items:
            raise CapExceededError("max_items", config.max_items, len(items), "the request's items")
        texts = []
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidInputError(f"item {index} must be a str, got {describe(item)}")
            if len(item) > config.max_item_chars:
                raise CapExceededError(
                    "max_item_chars", config.max_item_chars, len(item), f"item {index}'s length"
                )
            texts.append(item)
        size = len(json.dumps(texts, ensure_ascii=False).encode("utf-8"))
        if size > config.max_body_bytes:
            raise CapExceededError(
                "max_body_bytes", config.max_body_bytes, size, "the request's size in bytes"
            )
        if config.redact_inputs and self._redactor is not None:
            texts = [self._redactor.redact(text).text for text in texts]
        tokens = sum(count_tokens(self._tokenizer, text) for text in texts)
        return _Pending(texts, tokens, time.monotonic())

    def submit(self, items: Sequence[str], *, api_key: str | None = None) -> Future[torch.Tensor]:
        """Queue one request; the future gives its ``(len(items), dim)`` float tensor.

        Raises:
            AuthenticationError, AuthorizationError: the key (with a key store).
            CapExceededError: over ``max_items``, ``max_item_chars`` or ``max_body_bytes``.
            RateLimitError: the caller's bucket is empty (``retry_after``).
            ServiceClosedError: the service is draining or closed.
            InvalidInputError: not a list of strings.
        """
        try:
            if self._batcher.closing:
                raise ServiceClosedError("the embedding service is closed; no new requests")
            principal = self._gate.authenticate(api_key, "embed")
            pending = self._prepare(items)
            self._gate.charge(principal, requests=1, tokens=pending.tokens)
        except GenarchError as error:
            self._gate.failure(error)
            raise
        future: Future[torch.Tensor] = Future()
        self._batcher.put(Job(payload=pending, future=future, weight=max(1, len(pending.items))))
        return future

    def embed(
        self, items: Sequence[str], *, api_key: str | None = None, timeout: float | None = None
    ) -> torch.Tensor:
        """``submit(items).result(timeout)``."""
        return self.submit(items, api_key=api_key).result(timeout)

    def invoke(self, items: Sequence[str], *, api_key: str | None = None) -> torch.Tensor:
        """The :class:`~genarch.protocols.Endpoint` call: :meth:`embed`."""
        return self.embed(items, api_key=api_key)

    def invoke_batch(
        self, requests: Sequence[Sequence[str]], *, api_key: str | None = None
    ) -> list[torch.Tensor]:
        """``[invoke(r) for r in requests]``, queued together (so batched together)."""
        if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
            error = InvalidInputError(
                f"invoke_batch: requests must be a sequence of requests, got {describe(requests)}"
            )
            self._gate.failure(error)
            raise error
        futures = [self.submit(items, api_key=api_key) for items in requests]
        return [future.result() for future in futures]

    # ----------------------------------------------------------- the worker

    def _run_batch(self, jobs: list[Job]) -> None:
        items = [item for job in jobs for item in job.payload.items]
        try:
            features = self._extractor.extract(items)
            if features.shape[0] != len(items):
                raise IntegrityError(
                    f"extract returned {features.shape[0]} rows for {len(items)} items"
                )
        except Exception as error:
            if len(jobs) == 1:
                self._fail(jobs[0], error)
                return
            for job in jobs:  # one bad request must not fail its companions
                try:
                    self._finish(job, self._extractor.extract(job.payload.items))
                except Exception as alone:
                    self._fail(job, alone)
            return
        offset = 0
        for job in jobs:
            count = len(job.payload.items)
            self._finish(job, features[offset : offset + count].clone())
            offset += count

    def _fail(self, job: Job, error: BaseException) -> None:
        self._gate.failure(error)
        assert job.future is not None
        job.future.set_exception(error)

    def _finish(self, job: Job, features: torch.Tensor) -> None:
        pending: _Pending = job.payload
        self._gate.tokens.inc(pending.tokens, service=NAME, kind="input")
        self._gate.success(pending.started)
        assert job.future is not None
        job.future.set_result(features)

    # ------------------------------------------------------------ lifecycle

    def health(self) -> ServiceHealth:
        """Whether it serves, what, how busy it is and how many requests it answered."""
        return service_health(self._extractor, self.model_version, self._gate, self._batcher)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish every queued one, stop the worker (idempotent)."""
        self._batcher.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
