"""What every service does at the door and at the end: keys, limits, metrics.

:class:`ServiceGate` authenticates the caller's key for the call's scope,
charges the caller's token buckets, and records each request's outcome,
latency and errors in the shared :class:`~genarch.deploy.MetricsRegistry`
under the service's name.

Metric families (all labelled with ``service``):

* ``genarch_requests_total{outcome}`` — ``ok``, ``error`` or ``cancelled``;
* ``genarch_errors_total{type}`` — by error class name (refusals included);
* ``genarch_request_latency_seconds`` — from submission to the answer;
* ``genarch_tokens_total{kind}`` — ``prompt`` and ``completion`` tokens, or
  embedded ``input`` items;
* ``genarch_cache_hits_total`` / ``genarch_cache_misses_total``;
* ``genarch_batch_size``, ``genarch_queue_depth``, ``genarch_busy_slots``
  (from :class:`~genarch.deploy.batching.Worker`).
"""

from __future__ import annotations

import threading
import time

from genarch.deploy.batching import Worker
from genarch.deploy.keys import ApiKeyStore
from genarch.deploy.limits import RateLimiter
from genarch.deploy.metrics import LATENCY_BUCKETS, MetricsRegistry
from genarch.deploy.serving_records import ServiceHealth
from genarch.protocols import Tokenizer

__all__ = ["ANONYMOUS", "ServiceGate", "count_tokens", "find_tokenizer", "service_health"]

ANONYMOUS = "anonymous"
"""The rate-limit principal of every caller when a service has no key store."""


def find_tokenizer(component: object, tokenizer: Tokenizer | None) -> Tokenizer | None:
    """``tokenizer``, else the component's ``tokenizer`` attribute if it can ``encode``."""
    found = tokenizer if tokenizer is not None else getattr(component, "tokenizer", None)
    return found if callable(getattr(found, "encode", None)) else None


def count_tokens(tokenizer: Tokenizer | None, text: str) -> int:
    """The tokens of ``text``; without a tokenizer its UTF-8 bytes, an upper bound for
    tokenizers whose tokens each cover at least one byte."""
    if tokenizer is None:
        return len(text.encode("utf-8"))
    return len(tokenizer.encode(text))


class ServiceGate:
    """Authentication, rate limits and request metrics for one service.

    Args:
        service: the service's name (the ``service`` metric label).
        metrics: the registry to report to.
        keys: the key store; ``None`` serves without authentication.
        limiter: per-key limits; ``None`` applies none.
    """

    def __init__(
        self,
        service: str,
        metrics: MetricsRegistry,
        keys: ApiKeyStore | None,
        limiter: RateLimiter | None,
    ) -> None:
        self.service = service
        self.keys = keys
        self.limiter = limiter
        self.requests = metrics.counter("genarch_requests_total", "Requests, by outcome.")
        self.errors = metrics.counter("genarch_errors_total", "Errors, by error type.")
        self.latency = metrics.histogram(
            "genarch_request_latency_seconds", "Seconds from submission to answer.", LATENCY_BUCKETS
        )
        self.tokens = metrics.counter("genarch_tokens_total", "Tokens processed, by kind.")
        self.cache_hits = metrics.counter("genarch_cache_hits_total", "Answers from the cache.")
        self.cache_misses = metrics.counter(
            "genarch_cache_misses_total", "Cacheable requests not in the cache."
        )
        self._lock = threading.Lock()
        self.answered = 0
        self.failed = 0

    def authenticate(self, api_key: str | None, scope: str) -> str:
        """The caller's rate-limit principal: its key id, or :data:`ANONYMOUS` without a key store.

        Raises:
            AuthenticationError: the key is missing or invalid (a key store is set).
            AuthorizationError: the key lacks ``scope``.
        """
        if self.keys is None:
            return ANONYMOUS
        return self.keys.authenticate(api_key, scope).id

    def charge(self, principal: str, *, requests: int, tokens: int) -> None:
        """Take ``requests`` and ``tokens`` from the principal's buckets.

        Raises:
            RateLimitError: a bucket is empty (with ``retry_after``).
            InvalidInputError: the cost exceeds a bucket's capacity.
        """
        if self.limiter is not None:
            self.limiter.acquire(principal, requests=requests, tokens=tokens)

    def failure(self, error: BaseException, count: int = 1) -> None:
        """Record ``count`` requests that ended with ``error``."""
        self.errors.inc(count, service=self.service, type=type(error).__name__)
        self.requests.inc(count, service=self.service, outcome="error")
        with self._lock:
            self.answered += count
            self.failed += count

    def success(self, started: float, count: int = 1, outcome: str = "ok") -> None:
        """Record ``count`` requests answered (``outcome`` ``ok`` or ``cancelled``)."""
        self.requests.inc(count, service=self.service, outcome=outcome)
        for _ in range(count):
            self.latency.observe(time.monotonic() - started, service=self.service)
        with self._lock:
            self.answered += count


def service_health(
    component: object, model_version: str, gate: ServiceGate, batcher: Worker
) -> ServiceHealth:
    """The :class:`~genarch.deploy.ServiceHealth` of a service made of ``gate`` and ``batcher``."""
    queued, busy = batcher.load()
    status = "closed" if batcher.closed else "draining" if batcher.closing else "ready"
    return ServiceHealth(
        ready=status == "ready",
        status=status,
        component=type(component).__name__,
        model_version=model_version,
        queued=queued,
        busy_slots=busy,
        requests=gate.answered,
        failures=gate.failed,
    )
