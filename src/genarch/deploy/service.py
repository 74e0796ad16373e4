"""The serving core for text generation: :class:`GenerationService`, in process, no HTTP.

One worker thread owns the model; callers submit
:class:`~genarch.schemas.TextRequest`\\ s from any thread.

**Continuous batching** (the default, for a generator that can open a
:class:`~genarch.protocols.DecodingSession`, such as genarch's
:class:`~genarch.models.TextGenerator`): the worker
(:class:`~genarch.deploy.batching.SessionBatcher`) keeps one session of
``max_batch`` rows and decodes one token for every row per step. A request
joins the running batch at the next step when a row is free; a row that
finishes (its stop condition or ``max_new_tokens``) leaves at once and its row
is free for the next request, while the others go on. Each request keeps its
own sampling settings, seed and stop condition, so it gets the tokens it would
get alone. Only an idle service waits ``max_wait_ms`` for companions (so
requests that arrive together share one prefill). Streams are rows of the same
batch: each step's new text goes to the stream's reader.

A caller that cancels its future (as the HTTP server does when a client
disconnects) frees its row at the next step, even while it decodes.

**Micro-batches** (any other generator, or ``continuous_batching=False``):
requests that arrive within ``max_wait_ms`` of the oldest waiting one, up to
``max_batch``, are answered by *one* ``generate_batch`` call
(:class:`~genarch.deploy.batching.MicroBatcher`). A request cannot join a
running call: a row that finishes early stays in it until the call returns,
and requests that arrive meanwhile wait for the next micro-batch.

**Streams.** ``stream(request)`` returns a :class:`~genarch.deploy.TokenStream`.
Under continuous batching (and no output redaction) it is a row of the
session, as above, and closing the stream frees its row at the next step.
Under micro-batches, with a :class:`~genarch.protocols.StreamingGenerator` and no output
redaction, the worker advances the model's own ``stream`` one piece at a
time, interleaved with the other streams and between micro-batches; the
stream holds one slot until it ends, and cancelling it (``close()``) frees the
slot at the worker's next step. Otherwise (a generator without ``stream``, a
cache hit, output redaction, which needs the whole text) the answer comes as
one piece when it is ready, and closing the stream drops the request only
while it still waits for a slot.

**At the door**, in this order: the API key and its ``generate`` scope (if
the service has a key store), the caps (body size, ``max_new_tokens``,
prompt tokens, batch size), the caller's token buckets (one request, and
prompt tokens + ``max_new_tokens`` tokens), then the response cache (only
for deterministic requests: see :mod:`genarch.deploy.cache`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Self

from genarch.data.pii_redaction import PiiRedactor
from genarch.deploy.admission import ServiceGate, count_tokens, find_tokenizer, service_health
from genarch.deploy.batching import Job, MicroBatcher, SessionBatcher, Worker
from genarch.deploy.cache import ResponseCache, canonical_json, is_deterministic
from genarch.deploy.keys import ApiKeyStore
from genarch.deploy.limits import RateLimiter
from genarch.deploy.metrics import MetricsRegistry
from genarch.deploy.serving_errors import CapExceededError, ServiceClosedError
from genarch.deploy.serving_records import GenerationServiceConfig, ServiceHealth
from genarch.deploy.streams import PieceStepper, StreamState, TokenStream
from genarch.errors import GenarchError, IntegrityError, InvalidInputError
from genarch.protocols import (
    ContinuousBatchingGenerator,
    Generator,
    RowUpdate,
    StreamingGenerator,
    Tokenizer,
)
from genarch.schemas import TextRequest, TextResult
from genarch.validation import describe

__all__ = ["GenerationService"]

NAME = "generate"


@dataclass(frozen=True)
class _Pending:
    request: TextRequest
    prompt_tokens: int
    started: float


class GenerationService:
    """Serves a text :class:`~genarch.protocols.Generator` with batching, caps, keys and metrics.

    An :class:`~genarch.protocols.Endpoint` ``[TextRequest, TextResult]``
    (``invoke`` is :meth:`generate`). See the module docstring for how it
    batches and streams.

    Args:
        generator: any ``Generator[TextRequest, TextResult]``; only the
            worker thread calls it.
        config: a :class:`~genarch.deploy.GenerationServiceConfig`; keyword
            arguments are shorthand for its fields.
        keys: the API key store; ``None`` serves without keys.
        limiter: per-key token buckets; ``None`` applies none.
        redactor: replaces PII when ``redact_prompts``/``redact_outputs`` are
            set (default: a :class:`~genarch.data.PiiRedactor` in placeholder mode).
        cache: a response cache to use (may be shared by services; default:
            one of ``cache_bytes`` when that is above 0).
        metrics: the registry to report to (default: a new one, ``.metrics``).
        model_version: what cached answers are keyed on (default: the
            generator's class name and a random id, unique to this service).
        tokenizer: counts prompt tokens for the cap and the token bucket
            (default: the generator's ``tokenizer``; without one, a prompt's
            UTF-8 bytes stand in, an upper bound for byte-level tokenizers).

    Raises:
        ConfigError: a config value out of range, or both a config and fields.
        InvalidInputError: ``generator`` is not a Generator.

    Examples:
        >>> from genarch.schemas import TextRequest, TextResult
        >>> class Echo:
        ...     def generate(self, request): return TextResult(text=request.prompt[::-1])
        ...     def generate_batch(self, requests): return [self.generate(r) for r in requests]
        >>> with GenerationService(Echo(), max_wait_ms=0) as service:
        ...     service.generate(TextRequest(prompt="abc")).text
        'cba'
    """

    def __init__(
        self,
        generator: Generator[TextRequest, TextResult],
        config: GenerationServiceConfig | Mapping[str, Any] | None = None,
        *,
        keys: ApiKeyStore | None = None,
        limiter: RateLimiter | None = None,
        redactor: PiiRedactor | None = None,
        cache: ResponseCache | None = None,
        metrics: MetricsRegistry | None = None,
        model_version: str | None = None,
        tokenizer: Tokenizer | None = None,
        **fields: Any,
    ) -> None:
        if not isinstance(generator, Generator):
            raise InvalidInputError(
                f"GenerationService needs a Generator (generate, generate_batch), "
                f"got {describe(generator)}"
            )
        self.config = GenerationServiceConfig.resolve(config, fields)
        self._generator = generator
        self._tokenizer = find_tokenizer(generator, tokenizer)
        self.model_version = model_version or f"{type(generator).__name__}-{uuid.uuid4().hex[:12]}"
        self.metrics = metrics or MetricsRegistry()
        if cache is None and self.config.cache_bytes > 0:
            cache = ResponseCache(self.config.cache_bytes)
        self.cache = cache
        wants_redaction = self.config.redact_prompts or self.config.redact_outputs
        self._redactor = redactor or (PiiRedactor() if wants_redaction else None)
        self._gate = ServiceGate(NAME, self.metrics, keys, limiter)
        max_batch, max_wait_s = self.config.max_batch, self.config.max_wait_ms / 1000
        self._batcher: Worker
        if self.continuous:
            self._batcher = SessionBatcher(
                NAME,
                generator.open_session,  # type: ignore[attr-defined]
                deliver=self._deliver,
                fail=self._fail,
                cancelled=self._stream_cancelled,
                max_batch=max_batch,
                max_wait_s=max_wait_s,
                metrics=self.metrics,
            )
        else:
            self._batcher = MicroBatcher(
                NAME,
                self._run_batch,
                max_batch=max_batch,
                max_wait_s=max_wait_s,
                metrics=self.metrics,
            )

    @property
    def continuous(self) -> bool:
        """Whether requests are decoded by continuous batching (see the module docstring)."""
        return self.config.continuous_batching and isinstance(
            self._generator, ContinuousBatchingGenerator
        )

    def __repr__(self) -> str:
        return f"GenerationService({type(self._generator).__name__}, {self.health().status})"

    # ------------------------------------------------------------- the door

    def check_body_size(self, size: int) -> None:
        """Refuse a request body of ``size`` bytes over ``max_body_bytes`` (for an HTTP layer).

        Raises:
            CapExceededError: ``size`` is over the cap.
        """
        if size > self.config.max_body_bytes:
            error = CapExceededError(
                "max_body_bytes", self.config.max_body_bytes, size, "the request body in bytes"
            )
            self._gate.failure(error)
            raise error

    def _count_tokens(self, text: str) -> int:
        return count_tokens(self._tokenizer, text)

    def _prepare(self, request: object) -> _Pending:
        """Validate one request against the caps; redact its prompt if asked."""
        if not isinstance(request, TextRequest):
            raise InvalidInputError(f"expected a TextRequest, got {describe(request)}")
        request = TextRequest.parse(request.model_dump())  # built with model_construct? check it
        config = self.config
        size = len(canonical_json(request).encode("utf-8"))
        if size > config.max_body_bytes:
            raise CapExceededError(
                "max_body_bytes", config.max_body_bytes, size, "the request's size in bytes"
            )
        if request.max_new_tokens > config.max_new_tokens:
            raise CapExceededError(
                "max_new_tokens", config.max_new_tokens, request.max_new_tokens, "max_new_tokens"
            )
        if config.redact_prompts and self._redactor is not None:
            request = request.model_copy(
                update={"prompt": self._redactor.redact(request.prompt).text}
            )
        tokens = self._count_tokens(request.prompt)
        if tokens > config.max_prompt_tokens:
            raise CapExceededError(
                "max_prompt_tokens", config.max_prompt_tokens, tokens, "the prompt's token count"
            )
        return _Pending(request, tokens, time.monotonic())

    def _admit(self, requests: Sequence[object], api_key: str | None) -> list[_Pending]:
        """Key, caps and buckets for ``requests``, all checked before any is queued."""
        try:
            if self._batcher.closing:
                raise ServiceClosedError("the generation service is closed; no new requests")
            principal = self._gate.authenticate(api_key, "generate")
            pending = [self._prepare(request) for request in requests]
            cost = sum(p.prompt_tokens + p.request.max_new_tokens for p in pending)
            self._gate.charge(principal, requests=len(pending), tokens=cost)
        except GenarchError as error:
            self._gate.failure(error, max(1, len(requests)))
            raise
        return pending

    def _cached(self, pending: _Pending) -> TextResult | None:
        if self.cache is None or not is_deterministic(pending.request):
            return None
        result = self.cache.get(self.model_version, pending.request)
        counter = self._gate.cache_hits if result is not None else self._gate.cache_misses
        counter.inc(service=NAME)
        if result is not None:
            self._gate.tokens.inc(pending.prompt_tokens, service=NAME, kind="prompt")
            self._gate.tokens.inc(len(result.token_ids), service=NAME, kind="completion")
            self._gate.success(pending.started)
        return result

    def _enqueue(self, pending: _Pending) -> Future[TextResult]:
        future: Future[TextResult] = Future()
        if (result := self._cached(pending)) is not None:
            future.set_result(result)
            return future

        def cancelled(done: Future[TextResult]) -> None:
            if done.cancelled():
                self._gate.success(pending.started, outcome="cancelled")

        future.add_done_callback(cancelled)
        self._batcher.put(Job(payload=pending, future=future))
        return future

    # ----------------------------------------------------------- the calls

    def submit(self, request: TextRequest, *, api_key: str | None = None) -> Future[TextResult]:
        """Queue ``request``; the future gives its :class:`~genarch.schemas.TextResult`.

        Cancelling the future while the request waits drops it; under
        continuous batching, cancelling it while it decodes frees its row at
        the next step.

        Raises:
            AuthenticationError, AuthorizationError: the key (with a key store).
            CapExceededError: the request is over a cap (names it).
            RateLimitError: the caller's bucket is empty (``retry_after``).
            ServiceClosedError: the service is draining or closed.
            InvalidInputError: not a valid TextRequest. Errors of the model
                itself come from the future.
        """
        (pending,) = self._admit([request], api_key)
        return self._enqueue(pending)

    def generate(
        self, request: TextRequest, *, api_key: str | None = None, timeout: float | None = None
    ) -> TextResult:
        """``submit(request).result(timeout)``: the answer, or the request's error."""
        return self.submit(request, api_key=api_key).result(timeout)

    def invoke(self, request: TextRequest, *, api_key: str | None = None) -> TextResult:
        """The :class:`~genarch.protocols.Endpoint` call: :meth:`generate`."""
        return self.generate(request, api_key=api_key)

    def invoke_batch(
        self, requests: Sequence[TextRequest], *, api_key: str | None = None
    ) -> list[TextResult]:
        """Answer several requests; all are checked (and charged) before any is queued.

        Raises:
            CapExceededError: more than ``max_batch_size`` requests, or one over a cap.
            InvalidInputError: ``requests`` is not a sequence of TextRequests.
        """
        given: object = requests  # callers without a type checker pass anything
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            error = InvalidInputError(
                f"invoke_batch: requests must be a sequence of TextRequests, got {describe(requests)}"
            )
            self._gate.failure(error)
            raise error
        if len(requests) > self.config.max_batch_size:
            error = CapExceededError(
                "max_batch_size", self.config.max_batch_size, len(requests), "the batch's length"
            )
            self._gate.failure(error, len(requests))
            raise error
        futures = [self._enqueue(pending) for pending in self._admit(requests, api_key)]
        return [future.result() for future in futures]

    def stream(self, request: TextRequest, *, api_key: str | None = None) -> TokenStream:
        """Stream the answer to ``request`` as text pieces (see the module docstring).

        Closing the returned stream cancels the request and frees its slot.

        Raises:
            the errors of :meth:`submit`, at this call; the model's own errors
            come from iterating.
        """
        (pending,) = self._admit([request], api_key)
        state = StreamState()
        pieces = self.continuous or isinstance(self._generator, StreamingGenerator)
        if not pieces or self.config.redact_outputs:  # the answer comes whole, when it is ready
            future = self._enqueue(pending)

            def deliver(done: Future[TextResult]) -> None:
                if done.cancelled():
                    return
                if (error := done.exception()) is not None:
                    state.fail(error)
                    return
                if text := done.result().text:
                    state.put(text)
                state.end()

            future.add_done_callback(deliver)
            return TokenStream(state, future.cancel)
        if (hit := self._cached(pending)) is not None:
            if hit.text:
                state.put(hit.text)
            state.end()
            return TokenStream(state)
        if self.continuous:  # a row of the running batch
            self._batcher.put(Job(payload=pending, stream=state))
            return TokenStream(state, self._batcher.wake)
        generator: StreamingGenerator[TextRequest, TextResult, str] = self._generator  # type: ignore[assignment]
        stepper = PieceStepper(
            state,
            lambda: generator.stream(pending.request),
            lambda outcome: self._stream_done(pending, outcome),
            lambda: self._gate.success(pending.started, outcome="cancelled"),
        )
        self._batcher.put(Job(payload=pending, stepper=stepper))
        return TokenStream(state, self._batcher.wake)

    # ----------------------------------------------------------- the worker

    def _stream_done(self, pending: _Pending, outcome: str | BaseException) -> None:
        if isinstance(outcome, BaseException):
            self._gate.failure(outcome)
            return
        self._gate.tokens.inc(pending.prompt_tokens, service=NAME, kind="prompt")
        self._gate.tokens.inc(self._count_tokens(outcome), service=NAME, kind="completion")
        self._gate.success(pending.started)

    def _run_batch(self, jobs: list[Job]) -> None:
        requests = [job.payload.request for job in jobs]
        results: list[TextResult] | None = None
        try:
            results = list(self._generator.generate_batch(requests))
            if len(results) != len(jobs):
                raise IntegrityError(
                    f"generate_batch returned {len(results)} results for {len(jobs)} requests"
                )
        except Exception as error:
            if len(jobs) == 1:
                self._fail(jobs[0], error)
                return
            results = None  # one bad request must not fail its companions: retry each alone
        for index, job in enumerate(jobs):
            if results is not None:
                self._finish(job, results[index])
                continue
            try:
                result = self._generator.generate(requests[index])
            except Exception as error:
                self._fail(job, error)
            else:
                self._finish(job, result)

    def _stream_cancelled(self, job: Job) -> None:
        """A running session row whose caller gave up (a cancelled future counts itself)."""
        if job.stream is not None:
            self._gate.success(job.payload.started, outcome="cancelled")

    def _deliver(self, job: Job, update: RowUpdate[str, TextResult]) -> None:
        """A session row's new piece (to its stream) and, at its end, its result."""
        if job.stream is not None and update.piece:
            job.stream.put(update.piece)
        if update.result is not None:
            self._finish(job, update.result)

    def _fail(self, job: Job, error: BaseException) -> None:
        self._gate.failure(error)
        if job.stream is not None:
            job.stream.fail(error)
            return
        assert job.future is not None  # a job is a stream or carries a future
        with contextlib.suppress(InvalidStateError):  # its caller cancelled it meanwhile
            job.future.set_exception(error)

    def _finish(self, job: Job, result: TextResult) -> None:
        pending: _Pending = job.payload
        self._gate.tokens.inc(pending.prompt_tokens, service=NAME, kind="prompt")
        self._gate.tokens.inc(len(result.token_ids), service=NAME, kind="completion")
        if self.config.redact_outputs and self._redactor is not None:
            result = self._redact(result)  # (a redacted stream is a future job: whole text)
        if self.cache is not None:
            self.cache.put(self.model_version, pending.request, result)
        self._gate.success(pending.started)
        if job.stream is not None:
            job.stream.end()
            return
        assert job.future is not None  # a job is a stream or carries a future
        with contextlib.suppress(InvalidStateError):  # its caller cancelled it meanwhile
            job.future.set_result(result)

    def _redact(self, result: TextResult) -> TextResult:
        """The result with PII in its text replaced; its token ids re-encoded from the
        redacted text (empty without a tokenizer) and its log-probabilities dropped, since
        both would otherwise spell the removed text."""
        assert self._redactor is not None
        redaction = self._redactor.redact(result.text)
        if not redaction.spans:
            return result
        ids = tuple(self._tokenizer.encode(redaction.text)) if self._tokenizer else ()
        return result.model_copy(
            update={"text": redaction.text, "token_ids": ids, "logprobs": None}
        )

    # ------------------------------------------------------------ lifecycle

    def health(self) -> ServiceHealth:
        """Whether it serves, what, how busy it is and how many requests it answered."""
        return service_health(self._generator, self.model_version, self._gate, self._batcher)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish every queued and running one, stop the worker.

        Idempotent. Streams still running are decoded to their end (or until
        their callers cancel them). ``timeout`` bounds the wait in seconds.
        """
        self._batcher.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
