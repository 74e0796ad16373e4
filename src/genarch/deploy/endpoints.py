"""An in-process :class:`~genarch.protocols.Endpoint` over a loaded component.

:func:`serve` picks how to call the component from the protocol it satisfies:

* a :class:`~genarch.protocols.Generator`: ``invoke(request)`` is
  ``generate(request)``, ``invoke_batch`` is ``generate_batch``;
* a :class:`~genarch.protocols.FeatureExtractor`: a request is one batch of
  items and ``invoke(items)`` is ``extract(items)``, a ``(N, dim)`` tensor;
* a :class:`~genarch.protocols.VectorStore`: a request is a
  :class:`~genarch.deploy.VectorSearchRequest`, answered by ``search``;
* a :class:`~genarch.protocols.Retriever`: a request is a
  :class:`~genarch.deploy.RetrievalRequest`, answered by ``retrieve``.

The endpoint counts requests and failures for :meth:`LocalEndpoint.health`
and refuses calls once closed. It adds no batching, caching or limits of its
own: it is the component behind the deployment protocol, nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, Self, TypeVar

import torch

from genarch.deploy.records import EndpointHealth, RetrievalRequest, VectorSearchRequest
from genarch.errors import InvalidInputError
from genarch.protocols import FeatureExtractor, Generator, Retriever, VectorStore
from genarch.validation import describe, require_instance

__all__ = ["LocalEndpoint", "serve"]

Req = TypeVar("Req")
Res = TypeVar("Res")


class LocalEndpoint(Generic[Req, Res]):
    """Serves one component in this process (see the module docstring for what is called).

    Build one with :func:`serve` or :meth:`genarch.deploy.LocalDeployer.deploy`.
    Thread-safe as far as the component is: calls are not serialised.

    Args:
        component: the served component (kept for :meth:`health`).
        call_one: answers one request.
        call_batch: answers a sequence of requests, in order.
        name: the artefact's name, when served from one.
        version: the artefact's version.
        digest: the artefact's content address.
    """

    def __init__(
        self,
        component: object,
        call_one: Callable[[Req], Res],
        call_batch: Callable[[Sequence[Req]], Sequence[Res]],
        *,
        name: str | None = None,
        version: str | None = None,
        digest: str | None = None,
    ) -> None:
        self._component: object | None = component
        self._kind = type(component).__name__
        self._call_one = call_one
        self._call_batch = call_batch
        self._name, self._version, self._digest = name, version, digest
        self._lock = threading.Lock()
        self._requests = 0
        self._failures = 0

    def __repr__(self) -> str:
        served = f"{self._name}@{self._version}" if self._name else self._kind
        return f"LocalEndpoint({served}, {self.health().status})"

    def _open(self, method: str) -> None:
        if self._component is None:
            raise InvalidInputError(
                f"LocalEndpoint.{method}: the endpoint serving {self._label} is closed; "
                "deploy the artefact again"
            )

    @property
    def _label(self) -> str:
        return repr(f"{self._name}@{self._version}") if self._name else self._kind

    def _count(self, requests: int, failed: bool) -> None:
        with self._lock:
            self._requests += requests
            self._failures += requests if failed else 0

    def invoke(self, request: Req) -> Res:
        """The component's answer to one request.

        Raises:
            InvalidInputError: the endpoint is closed, or the component refuses
                the request (the component's own error passes through).
        """
        self._open("invoke")
        try:
            result = self._call_one(request)
        except BaseException:
            self._count(1, failed=True)
            raise
        self._count(1, failed=False)
        return result

    def invoke_batch(self, requests: Sequence[Req]) -> list[Res]:
        """``[invoke(r) for r in requests]``, computed as the component batches.

        Raises:
            InvalidInputError: ``requests`` is not a sequence, the endpoint is
                closed, or the component refuses a request.
        """
        self._open("invoke_batch")
        if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
            raise InvalidInputError(
                f"LocalEndpoint.invoke_batch: requests must be a sequence of requests, "
                f"got {describe(requests)}"
            )
        try:
            results = list(self._call_batch(requests))
        except BaseException:
            self._count(len(requests), failed=True)
            raise
        self._count(len(requests), failed=False)
        return results

    def health(self) -> EndpointHealth:
        """Whether the endpoint serves, what, and how many requests it answered."""
        with self._lock:
            ready = self._component is not None
            return EndpointHealth(
                ready=ready,
                status="ready" if ready else "closed",
                component=self._kind,
                name=self._name,
                version=self._version,
                digest=self._digest,
                requests=self._requests,
                failures=self._failures,
            )

    def close(self) -> None:
        """Stop serving and drop the component (idempotent)."""
        with self._lock:
            self._component = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _search(store: VectorStore) -> Callable[[VectorSearchRequest], Any]:
    def call(request: VectorSearchRequest) -> Any:
        request = require_instance(request, VectorSearchRequest, "request")
        return store.search(request.queries, request.k, where=request.where)

    return call


def _retrieve(retriever: Retriever) -> Callable[[RetrievalRequest], Any]:
    def call(request: RetrievalRequest) -> Any:
        request = require_instance(request, RetrievalRequest, "request")
        return retriever.retrieve(request.query, request.k)

    return call


def _extract(extractor: FeatureExtractor[Any]) -> Callable[[Sequence[Any]], torch.Tensor]:
    def call(items: Sequence[Any]) -> torch.Tensor:
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise InvalidInputError(
                "a feature-extraction request is a sequence of items (one batch), "
                f"got {describe(items)}"
            )
        return extractor.extract(items)

    return call


def serve(
    component: object,
    *,
    name: str | None = None,
    version: str | None = None,
    digest: str | None = None,
) -> LocalEndpoint[Any, Any]:
    """Wrap ``component`` in a :class:`LocalEndpoint` (see the module docstring).

    Args:
        component: a Generator, FeatureExtractor, VectorStore or Retriever.
        name: the artefact's name, reported by ``health()``.
        version: the artefact's version.
        digest: the artefact's content address.

    Raises:
        InvalidInputError: ``component`` satisfies none of those protocols.

    Examples:
        >>> from genarch.features import HashingVectorizer
        >>> with serve(HashingVectorizer(dim=8)) as endpoint:
        ...     tuple(endpoint.invoke(["hello", "world"]).shape), endpoint.health().requests
        ((2, 8), 1)
        >>> endpoint.health().status
        'closed'
    """
    one: Callable[[Any], Any]
    batch: Callable[[Sequence[Any]], Sequence[Any]]
    if isinstance(component, Generator):
        one, batch = component.generate, component.generate_batch
    elif isinstance(component, FeatureExtractor):
        one = _extract(component)
        batch = _each(one)
    elif isinstance(component, VectorStore):
        one = _search(component)
        batch = _each(one)
    elif isinstance(component, Retriever):
        one = _retrieve(component)
        batch = _each(one)
    else:
        raise InvalidInputError(
            "serve: component must be a Generator, FeatureExtractor, VectorStore or "
            f"Retriever, got {describe(component)}; call its methods directly after load()"
        )
    return LocalEndpoint(component, one, batch, name=name, version=version, digest=digest)


def _each(call: Callable[[Any], Any]) -> Callable[[Sequence[Any]], list[Any]]:
    return lambda requests: [call(request) for request in requests]
