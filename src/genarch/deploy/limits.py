"""Per-key rate limits: token buckets on requests and on tokens.

A :class:`TokenBucket` holds up to ``capacity`` units and refills at
``rate`` units per second; a request takes units or is refused with the time
after which it would fit. :class:`RateLimiter` keeps two buckets per key (one
counting requests, one counting tokens) and admits a request only when both
can pay, taking from both at once, so a refusal costs nothing.

What a text request costs in tokens is decided *before* decoding: its prompt
tokens plus its ``max_new_tokens`` (the most it may produce) — the figure the
limiter can check without running the model. The clock is injectable
(``clock=``, default :func:`time.monotonic`), so tests drive time by hand.

Examples:
    >>> now = [0.0]
    >>> limiter = RateLimiter(requests_per_second=1, request_burst=2, clock=lambda: now[0])
    >>> limiter.acquire("alice"); limiter.acquire("alice")
    >>> try:
    ...     limiter.acquire("alice")
    ... except RateLimitError as error:
    ...     print(error.limit, error.retry_after)
    requests 1.0
    >>> now[0] = 1.0
    >>> limiter.acquire("alice")  # one request refilled after a second
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from genarch.deploy.serving_errors import RateLimitError
from genarch.errors import ConfigError, InvalidInputError

__all__ = ["Clock", "RateLimitError", "RateLimiter", "TokenBucket"]

Clock = Callable[[], float]


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number or None, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


class TokenBucket:
    """Up to ``capacity`` units, refilled continuously at ``rate`` units per second.

    Not thread-safe on its own: :class:`RateLimiter` guards its buckets with a lock.

    Args:
        capacity: the most units it holds (the burst); it starts full.
        rate: units added per second.
        clock: seconds from an arbitrary origin, never going back.
    """

    def __init__(self, capacity: float, rate: float, clock: Clock = time.monotonic) -> None:
        self.capacity = _positive(capacity, "capacity") or 0.0
        self.rate = _positive(rate, "rate") or 0.0
        self._clock = clock
        self._units = self.capacity
        self._last = clock()

    def available(self) -> float:
        """The units in the bucket now."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._units = min(self.capacity, self._units + elapsed * self.rate)
        self._last = max(self._last, now)
        return self._units

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` units are there (0 if they are now); ``inf`` if never."""
        if amount > self.capacity:
            return math.inf
        missing = amount - self.available()
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, amount: float) -> None:
        """Remove ``amount`` units (the caller checked :meth:`wait_for` is 0)."""
        self.available()
        self._units -= amount


class RateLimiter:
    """Two token buckets per key: requests and tokens. ``None`` leaves a limit off.

    Args:
        requests_per_second: request refill rate per key.
        request_burst: the most requests a key may make at once (default: one
            second's worth, at least 1).
        tokens_per_second: token refill rate per key.
        token_burst: the most tokens a key may spend at once (default: one
            minute's worth). A single request costing more than this is
            refused as invalid input, since waiting would never help.
        clock: the time source (injectable for tests).

    Raises:
        ConfigError: a rate or burst that is not a positive finite number.
    """

    def __init__(
        self,
        *,
        requests_per_second: float | None = None,
        request_burst: float | None = None,
        tokens_per_second: float | None = None,
        token_burst: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.requests_per_second = _positive(requests_per_second, "requests_per_second")
        self.tokens_per_second = _positive(tokens_per_second, "tokens_per_second")
        burst = _positive(request_burst, "request_burst")
        if burst is None and self.requests_per_second is not None:
            burst = max(1.0, self.requests_per_second)
        self.request_burst = burst
        burst = _positive(token_burst, "token_burst")
        if burst is None and self.tokens_per_second is not None:
            burst = self.tokens_per_second * 60
        self.token_burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_second={self.requests_per_second}, "
            f"request_burst={self.request_burst}, tokens_per_second={self.tokens_per_second}, "
            f"token_burst={self.token_burst})"
        )

    def _buckets_of(self, key: str) -> tuple[TokenBucket | None, TokenBucket | None]:
        buckets = self._buckets.get(key)
        if buckets is None:
            requests = tokens = None
            if self.requests_per_second is not None and self.request_burst is not None:
                requests = TokenBucket(self.request_burst, self.requests_per_second, self._clock)
            if self.tokens_per_second is not None and self.token_burst is not None:
                tokens = TokenBucket(self.token_burst, self.tokens_per_second, self._clock)
            buckets = self._buckets[key] = (requests, tokens)
        return buckets

    def acquire(self, key: str, *, requests: int = 1, tokens: int = 0) -> None:
        """Admit ``requests`` requests costing ``tokens`` tokens for ``key``, or refuse.

        Raises:
            RateLimitError: a bucket cannot pay now; ``retry_after`` says when it can.
            InvalidInputError: the cost exceeds a bucket's capacity (it never could pay).
        """
        with self._lock:
            request_bucket, token_bucket = self._buckets_of(key)
            waits: list[tuple[float, str]] = []
            for bucket, amount, name, cap in (
                (request_bucket, requests, "requests", "request_burst"),
                (token_bucket, tokens, "tokens", "token_burst"),
            ):
                if bucket is None or amount <= 0:
                    continue
                wait = bucket.wait_for(amount)
                if math.isinf(wait):
                    raise InvalidInputError(
                        f"this call costs {amount} {name}, more than the per-key "
                        f"{cap}={bucket.capacity:g} allows at once; send less per call"
                    )
                waits.append((wait, name))
            wait, limit = max(waits, default=(0.0, ""))
            if wait > 0:
                raise RateLimitError(
                    f"rate limit on {limit} reached for this key; retry after {wait:.3f} s",
                    retry_after=wait,
                    limit=limit,
                )
            if request_bucket is not None and requests > 0:
                request_bucket.take(requests)
            if token_bucket is not None and tokens > 0:
                token_bucket.take(tokens)
