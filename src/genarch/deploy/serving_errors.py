"""The errors of the serving core, each mapping to one HTTP status.

They derive from :class:`~genarch.errors.GenarchError` (the caps and the
closed service from :class:`~genarch.errors.InvalidInputError`, as the
:class:`~genarch.protocols.Endpoint` contract asks), so ``except
GenarchError`` still catches everything; an HTTP layer tells them apart by
class::

    GenarchError
    ├── AuthenticationError            401  no key, an unknown, malformed or revoked key
    ├── AuthorizationError             403  a valid key without the scope the call needs
    │   (PermissionError)
    ├── RateLimitError                 429  a token bucket is empty; ``retry_after`` seconds
    └── InvalidInputError
        ├── CapExceededError           400  a request over a cap (413 for ``max_body_bytes``)
        └── ServiceClosedError         503  the service is draining or closed

Messages never contain an API key or a prompt.
"""

from __future__ import annotations

from genarch.errors import GenarchError, InvalidInputError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CapExceededError",
    "RateLimitError",
    "ServiceClosedError",
]


class AuthenticationError(GenarchError):
    """No API key was given, or the key is malformed, unknown or revoked (HTTP 401)."""


class AuthorizationError(GenarchError, PermissionError):
    """The API key is valid but lacks the scope the call needs (HTTP 403).

    Attributes:
        scope: the scope that was missing.
    """

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


class RateLimitError(GenarchError):
    """A per-key token bucket cannot pay for the request now (HTTP 429).

    Attributes:
        retry_after: seconds after which the same request would be admitted
            (assuming nothing else spends from the bucket meanwhile).
        limit: which bucket refused: ``"requests"`` or ``"tokens"``.
    """

    def __init__(self, message: str, *, retry_after: float, limit: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit


class CapExceededError(InvalidInputError):
    """A request exceeds one of the service's caps (HTTP 400; 413 for the body size).

    Attributes:
        cap: the cap's name (a field of the service's config, e.g.
            ``"max_new_tokens"``).
        limit: the cap's value.
        actual: what the request asked for.
    """

    def __init__(self, cap: str, limit: int, actual: int, what: str) -> None:
        super().__init__(f"{what} is {actual}, over the cap {cap}={limit}")
        self.cap = cap
        self.limit = limit
        self.actual = actual


class ServiceClosedError(InvalidInputError):
    """The service is draining or closed and takes no new requests (HTTP 503)."""
