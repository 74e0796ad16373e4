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

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, Self

import torch

from genarch.deploy.serving_errors import AuthenticationError, AuthorizationError, RateLimitError
from genarch.errors import GenarchError, InvalidInputError, NotFoundError, missing_dependency
from genarch.schemas import TextRequest, TextResult

if TYPE_CHECKING:
    import httpx

__all__ = [
    "OpenAICompatibleEmbedder",
    "OpenAICompatibleGenerator",
    "RemoteConnectionError",
    "RemoteServerError",
]

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class RemoteServerError(GenarchError):
    """The server failed (a 5xx after the retries) or answered something that is not the API.

    Attributes:
        url: the URL that was called.
        status: the HTTP status, ``None`` when no answer came.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class RemoteConnectionError(RemoteServerError):
    """The server could not be reached (refused, unknown host) or did not answer in time."""


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise missing_dependency("httpx", "serve", "the OpenAI-compatible clients") from None
    return httpx


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds (it is either a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class _Connection:
    """One HTTP client, the retry policy and the error mapping, shared by both clients."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        max_retries: int,
        backoff: float,
        max_backoff: float,
        max_retry_after: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        rng: random.Random,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.httpx = _httpx()
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(
                f"base_url must be an http:// or https:// URL such as "
                f"'http://127.0.0.1:8000/v1', got {base_url!r}"
            )
        for name, value in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
            ("max_retry_after", max_retry_after),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(f"{name} must be a number >= 0 (seconds), got {value!r}")
        if timeout == 0:
            raise InvalidInputError("timeout must be above 0 seconds, got 0")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise InvalidInputError("api_key must be a non-empty string or None")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                self._client = self.httpx.Client(
                    timeout=self.timeout, headers=headers, transport=self.transport
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------ retries

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (0-based); ``None``: give up now."""
        if attempt >= self.max_retries:
            return None
        if response is not None:
            asked = _retry_after(response.headers.get("retry-after"), self.clock())
            if asked is not None:
                return asked if asked <= self.max_retry_after else None
        exponential = min(self.max_backoff, self.backoff * 2.0**attempt)
        return exponential * self.rng.uniform(0.5, 1.0)

    def failed(self, url: str, error: Exception) -> RemoteConnectionError:
        """The error for a transport failure once the response had begun (or timed out)."""
        if isinstance(error, self.httpx.TimeoutException):
            message = f"{url} did not answer within {self.timeout} s ({type(error).__name__})"
        else:
            message = f"the connection to {url} failed: {error or type(error).__name__}"
        return RemoteConnectionError(message, url=url)

    def lines(self, response: httpx.Response) -> Iterator[str]:
        """The lines of a streamed body; a transport failure becomes RemoteConnectionError."""
        try:
            yield from response.iter_lines()
        except self.httpx.TransportError as error:
            raise self.failed(str(response.url), error) from None

    def post(self, route: str, body: Mapping[str, Any], scope: str) -> Any:
        """The JSON answer of ``POST base_url/route``, retried and mapped to genarch's errors."""
        with self.open(route, body, scope, stream=False) as response:
            try:
                response.read()
            except self.httpx.TransportError as error:
                raise self.failed(str(response.url), error) from None
            try:
                return response.json()
            except ValueError:
                raise RemoteServerError(
                    f"{response.url} answered {response.status_code} with a body that is not JSON",
                    url=str(response.url),
                    status=response.status_code,
                ) from None

    def open(self, route: str, body: Mapping[str, Any], scope: str, *, stream: bool) -> Any:
        """A context manager over the successful response (retries happen before it opens)."""
        url = f"{self.base_url}/{route}"
        httpx = self.httpx
        attempt = 0
        while True:
            client = self.client()
            request = client.build_request("POST", url, json=dict(body))
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as error:
                if not isinstance(error, httpx.ConnectTimeout):  # it may be running: no retry
                    raise self.failed(url, error) from None
                delay = self._delay(attempt, None)
                if delay is None:
                    raise self.failed(url, error) from None
                self.sleep(delay)
                attempt += 1
                continue
            except httpx.TransportError as error:
                delay = self._delay(attempt, None)
                if delay is None:
                    raise RemoteConnectionError(
                        f"could not connect to {url}: {error or type(error).__name__} "
                        f"(after {attempt + 1} attempt{'s' if attempt else ''}); "
                        "is the server running and the URL right?",
                        url=url,
                    ) from None
                self.sleep(delay)
                attempt += 1
                continue
            if response.status_code < 400:
                return _Closing(response)
            response.read()
            response.close()
            delay = (
                self._delay(attempt, response)
                if response.status_code in _RETRIED_STATUSES
                else None
            )
            if delay is None:
                raise self._error(response, url, scope)
            self.sleep(delay)
            attempt += 1

    def _error(self, response: httpx.Response, url: str, scope: str) -> GenarchError:
        status = response.status_code
        message, param = _error_message(response)
        where = f"{url} answered {status}: {message}"
        if status == 401:
            return AuthenticationError(f"{where} (check the api_key)")
        if status == 403:
            return AuthorizationError(f"{where} (the key needs the {scope!r} scope)", scope=scope)
        if status == 429:
            asked = _retry_after(response.headers.get("retry-after"), self.clock())
            return RateLimitError(
                f"{where} (after {self.max_retries} retries)",
                retry_after=asked if asked is not None else 0.0,
                limit="requests",
            )
        if status == 404:
            return NotFoundError(where)
        if status in (400, 413, 422):
            return InvalidInputError(where if param is None else f"{where} (field {param!r})")
        return RemoteServerError(where, url=url, status=status)


class _Closing:
    """``with`` support for a streamed httpx response that is already open."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc_info: object) -> None:
        self.response.close()


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The message and field of OpenAI's error shape, else the start of the body."""
    try:
        error = response.json()["error"]
        return str(error.get("message") or error), error.get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200] or "(empty body)", None


def _finish(reason: object) -> Literal["length", "stop"]:
    return "stop" if reason == "stop" else "length"


class _Client:
    """The shared constructor arguments and lifetime of both clients."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
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
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"model must be a non-empty string, got {model!r}")
        self.model = model
        self._connection = _Connection(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            sleep=sleep,
            clock=clock,
            rng=rng or random.Random(),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._connection.base_url

    def close(self) -> None:
        """Close the HTTP connections (the client opens new ones if used again)."""
        self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"


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
