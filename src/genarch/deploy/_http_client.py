"""The transport shared by the OpenAI-compatible clients: retries, errors, lifetime.

Private: the public clients and their errors are in :mod:`genarch.deploy.clients`.
Split from that module so each file stays readable: this one is how a request
travels (timeouts, jittered backoff honouring ``Retry-After``, the errors a
status becomes), the other is what the two clients send and read.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Self

from genarch.deploy.serving_errors import AuthenticationError, AuthorizationError, RateLimitError
from genarch.errors import GenarchError, InvalidInputError, NotFoundError, missing_dependency

if TYPE_CHECKING:
    import httpx

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
