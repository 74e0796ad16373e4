"""Clients for any OpenAI-compatible server: genarch's own (``genarch serve``) or another.

* :class:`OpenAICompatibleGenerator` is a text
  :class:`~genarch.protocols.Generator` and
  :class:`~genarch.protocols.StreamingGenerator` (``TextRequest`` ->
  ``TextResult``) over ``POST {base_url}/completions`` (streamed as
  server-sent events), so RAG, evaluators and pipelines can use a remote model.
* :class:`OpenAICompatibleEmbedder` is a ``FeatureExtractor[str]`` over
  ``POST {base_url}/embeddings``.

``base_url`` is the API root, as the ``openai`` client takes it
(``http://127.0.0.1:8000/v1``). Both need ``httpx`` (``pip install
"genarch[serve]"``), imported only when a client is built.

**Retries.** A ``429`` or a ``5xx`` answer, or a connection that could not be
opened, is retried up to ``max_retries`` times with jittered exponential
backoff (``backoff * 2**attempt``, at most ``max_backoff`` seconds, times a
random factor in ``[0.5, 1]``). A ``Retry-After`` header (seconds or an HTTP
date) is honoured instead: the client waits that long, unless it is longer
than ``max_retry_after``, in which case it gives up at once rather than ask
again too early. A stream is retried only before its first byte. Timeouts
(``timeout`` seconds per connect, read and write) other than a connect
timeout are not retried: a request that timed out may still be running on
the server. A stream that ends without ``data: [DONE]`` raises
``RemoteServerError`` rather than return a truncated text.

**Errors** (every one a :class:`~genarch.errors.GenarchError`)::

    401                          AuthenticationError
    403                          AuthorizationError
    429, after the retries       RateLimitError (``retry_after``)
    400, 413, 422                InvalidInputError (the server's message and field)
    404                          NotFoundError (an unknown model or route)
    5xx, after the retries       RemoteServerError (``status``)
    connection refused, timeout  RemoteConnectionError (names the URL)

A request the OpenAI API cannot express is refused before anything is sent
(:class:`~genarch.errors.InvalidInputError`): ``stop_token_ids`` and
``logprobs`` (an OpenAI server names tokens by their text, not their ids, so a
``TextResult`` could not be filled in faithfully). ``top_k``, ``min_p`` and
``repetition_penalty`` go as extra body fields (the vLLM convention, which
genarch's server follows); servers that do not know them may ignore them.

Determinism is the server's: genarch's server honours ``seed``, so a seeded
request gives the same text every time (:func:`~genarch.testing.check_generator`
passes on this client against ``genarch serve``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import torch

from genarch.deploy._http_client import (
    RemoteConnectionError,
    RemoteServerError,
    _Client,
)
from genarch.errors import InvalidInputError
from genarch.schemas import TextRequest, TextResult

if TYPE_CHECKING:
    import httpx

__all__ = [
    "OpenAICompatibleEmbedder",
    "OpenAICompatibleGenerator",
    "RemoteConnectionError",
    "RemoteServerError",
]


def _finish(reason: object) -> Literal["length", "stop"]:
    return "stop" if reason == "stop" else "length"


class OpenAICompatibleGenerator(_Client):
    """A text generator served by an OpenAI-compatible ``/completions`` route.

    Args:
        base_url: the API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the model id the server serves (``GET /v1/models``).
        api_key: sent as ``Authorization: Bearer``; ``None`` sends none.
        timeout: seconds for each of connect, read and write.
        max_retries: retries after a 429, a 5xx or a refused connection.
        backoff: the first retry's delay in seconds (doubled each retry,
            jittered, at most ``max_backoff``).
        max_backoff: the longest backoff delay in seconds.
        max_retry_after: the longest ``Retry-After`` the client waits; a longer
            one raises at once.
        sleep: waits between retries (tests pass a recorder).
        clock: the time, to read ``Retry-After`` given as an HTTP date.
        rng: draws the jitter (seed it for reproducible delays).
        transport: an ``httpx`` transport (tests pass ``httpx.MockTransport``).
        max_concurrency: requests ``generate_batch`` has in flight at once
            (the server batches them).

    Raises:
        InvalidInputError: a bad argument.
        MissingDependencyError: httpx is not installed.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            model,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            sleep=sleep,
            clock=clock,
            rng=rng,
            transport=transport,
        )
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise InvalidInputError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be an int >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency

    def _body(self, request: object, *, stream: bool) -> dict[str, Any]:
        if not isinstance(request, TextRequest):
            raise InvalidInputError(f"request must be a TextRequest, got {type(request).__name__}")
        if request.stop_token_ids:
            raise InvalidInputError(
                "request.stop_token_ids cannot be sent to an OpenAI-compatible server "
                "(the API names no token ids); use stop strings"
            )
        if request.logprobs is not None:
            raise InvalidInputError(
                "request.logprobs is not supported by OpenAICompatibleGenerator (the API "
                "names tokens by text, so token ids could not be reported); leave it None"
            )
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
            "stream": stream,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.top_k is not None:
            body["top_k"] = request.top_k
        if request.min_p is not None:
            body["min_p"] = request.min_p
        if request.repetition_penalty != 1.0:
            body["repetition_penalty"] = request.repetition_penalty
        return body

    def _completion(self, body: dict[str, Any]) -> TextResult:
        answer = self._connection.post("completions", body, "generate")
        try:
            choice = answer["choices"][0]
            return TextResult(
                text=str(choice["text"]), finish_reason=_finish(choice.get("finish_reason"))
            )
        except (KeyError, IndexError, TypeError) as error:
            url = f"{self.base_url}/completions"
            raise RemoteServerError(
                f"{url} answered without choices[0].text ({type(error).__name__}: {error})",
                url=url,
            ) from None

    def generate(self, request: TextRequest) -> TextResult:
        """The server's completion of ``request`` (``token_ids`` stay empty: the API has none)."""
        return self._completion(self._body(request, stream=False))

    def generate_batch(self, requests: Sequence[TextRequest]) -> list[TextResult]:
        """Every request sent at once (up to ``max_concurrency`` in flight), results in order."""
        bodies = [self._body(r, stream=False) for r in requests]  # refuse before sending any
        if len(bodies) <= 1:
            return [self._completion(b) for b in bodies]
        with ThreadPoolExecutor(min(self.max_concurrency, len(bodies))) as pool:
            return list(pool.map(self._completion, bodies))

    def stream(self, request: TextRequest) -> Iterator[str]:
        """The completion's text pieces as the server streams them (server-sent events)."""
        body = self._body(request, stream=True)
        url = f"{self.base_url}/completions"
        with self._connection.open("completions", body, "generate", stream=True) as response:
            for line in self._connection.lines(response):
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise RemoteServerError(
                        f"{url} streamed an event that is not JSON", url=url
                    ) from None
                if "error" in event:
                    raise RemoteServerError(
                        f"{url} failed mid-stream: {event['error'].get('message')}", url=url
                    )
                for choice in event.get("choices") or ():
                    if choice.get("text"):
                        yield str(choice["text"])
        raise RemoteServerError(f"{url} ended the stream without data: [DONE]", url=url)


class OpenAICompatibleEmbedder(_Client):
    """A ``FeatureExtractor[str]`` served by an OpenAI-compatible ``/embeddings`` route.

    Args:
        base_url: the API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the embedding model id the server serves.
        api_key: sent as ``Authorization: Bearer``; ``None`` sends none.
        dim: the vectors' size; ``None`` asks the server once (embedding one
            short text) the first time it is needed.
        batch_size: texts per request (longer lists are split).
        timeout, max_retries, backoff, max_backoff, max_retry_after, sleep,
            clock, rng, transport: as for :class:`OpenAICompatibleGenerator`.

    Raises:
        InvalidInputError: a bad argument.
        MissingDependencyError: httpx is not installed.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        dim: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            model,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            sleep=sleep,
            clock=clock,
            rng=rng,
            transport=transport,
        )
        for name, value in (("dim", dim), ("batch_size", batch_size)):
            if value is None and name == "dim":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
        self._dim = dim
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """The size of the vectors (asked of the server once when not given)."""
        if self._dim is None:
            self._dim = int(self._embed(["dimension probe"]).shape[1])
        return self._dim

    def _embed(self, texts: list[str]) -> torch.Tensor:
        url = f"{self.base_url}/embeddings"
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        answer = self._connection.post("embeddings", body, "embed")
        try:
            rows = sorted(answer["data"], key=lambda row: int(row["index"]))
            vectors = torch.tensor([row["embedding"] for row in rows], dtype=torch.float32)
        except (KeyError, TypeError, ValueError) as error:
            raise RemoteServerError(
                f"{url} answered without data[].embedding ({type(error).__name__}: {error})",
                url=url,
            ) from None
        if vectors.dim() != 2 or vectors.shape[0] != len(texts):
            raise RemoteServerError(
                f"{url} answered {tuple(vectors.shape)} vectors for {len(texts)} texts", url=url
            )
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise RemoteServerError(
                f"{url} answered vectors of size {vectors.shape[1]}, expected dim={self._dim}",
                url=url,
            )
        return vectors

    def extract(self, items: Sequence[str]) -> torch.Tensor:
        """The server's embedding of each text, float32 ``(len(items), dim)`` on the CPU."""
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise InvalidInputError(f"items must be a sequence of str, got {type(items).__name__}")
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidInputError(f"items[{index}] must be a str, got {type(item).__name__}")
        if not items:
            return torch.zeros(0, self.dim)
        texts = list(items)
        chunks = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        return torch.cat([self._embed(chunk) for chunk in chunks])
