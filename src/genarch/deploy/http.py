"""An OpenAI-compatible HTTP server over genarch's serving core (``pip install "genarch[serve]"``).

:func:`create_app` wraps a :class:`~genarch.deploy.GenerationService` (and
optionally an :class:`~genarch.deploy.EmbeddingService` and a
:class:`~genarch.protocols.FeedbackLoop`) in a FastAPI app:

* ``POST /v1/completions``, ``POST /v1/chat/completions`` (``stream: true``
  gives server-sent events ending in ``data: [DONE]``), ``POST /v1/embeddings``,
  ``GET /v1/models``;
* ``GET /healthz`` (the process answers), ``GET /readyz`` (503 unless every
  service is ready: while draining or closed), ``GET /metrics`` (Prometheus
  text from the services' :class:`~genarch.deploy.MetricsRegistry`);
* ``POST /v1/feedback``: a rating, correction or preference about a response
  this server gave, by its ``id``, recorded through the feedback loop.

**Keys.** With ``keys``, every route but ``/healthz`` and ``/readyz`` needs
``Authorization: Bearer <key>``: completions and chat the ``generate`` scope,
embeddings ``embed``, feedback ``feedback``, ``/metrics`` ``admin``, and
``/v1/models`` any valid key. The services check the key again, with their
own rate limits.

**Cancellation.** A streaming client that disconnects closes its
:class:`~genarch.deploy.TokenStream`: the worker stops decoding it at its
next step and frees its slot. A non-streaming client that disconnects while
its request still waits for a slot drops it; once its micro-batch runs, the
batch finishes (``generate_batch`` cannot be interrupted).

Request fields and errors: :mod:`genarch.deploy.http_models` and
:mod:`genarch.deploy.http_errors`.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import torch

from genarch.data.pii_redaction import PiiRedactor
from genarch.deploy.admission import count_tokens
from genarch.deploy.embedding_service import EmbeddingService
from genarch.deploy.http_errors import HttpError, describe_failure
from genarch.deploy.http_models import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    unsupported_field,
)
from genarch.deploy.http_responses import (
    ResponseMemory,
    chat_logprobs,
    completion_logprobs,
    completion_tokens,
    finish_reason,
    usage,
)
from genarch.deploy.keys import ApiKey, ApiKeyStore
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import AuthorizationError, CapExceededError
from genarch.errors import InvalidInputError, missing_dependency
from genarch.protocols import FeedbackLoop, PromptTemplate, Tokenizer
from genarch.schemas import Correction, Preference, Rating, TextRequest, TextResult

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

__all__ = ["create_app"]

Handler = Callable[["Request"], Awaitable["Response"]]
_HARD_BODY_LIMIT = 64 * 1024 * 1024  # past this a body is not even read to its end


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise missing_dependency("fastapi", "serve", "genarch's HTTP server") from None
    return fastapi


def create_app(
    service: GenerationService,
    embeddings: EmbeddingService | None = None,
    feedback: FeedbackLoop | None = None,
    *,
    model_name: str = "genarch",
    embedding_model_name: str | None = None,
    keys: ApiKeyStore | None = None,
    chat_template: PromptTemplate | None = None,
    tokenizer: Tokenizer | None = None,
    remember_responses: int = 4096,
    close_on_shutdown: bool = True,
) -> FastAPI:
    """The FastAPI app serving ``service`` (see the module docstring for the routes).

    Args:
        service: the generation service.
        embeddings: serves ``/v1/embeddings`` (404 without it).
        feedback: stores ``/v1/feedback`` (404 without it).
        model_name: the generation model's id in ``/v1/models`` and responses;
            a request naming another model gets a 404.
        embedding_model_name: the embedding model's id (default ``model_name + "-embeddings"``).
        keys: the API key store; ``None`` serves without keys (loopback only!).
        chat_template: turns chat messages into a prompt (a
            :class:`~genarch.orchestration.chat_template.ChatTemplate`); without
            one, chat completions are refused with a 404.
        tokenizer: decodes token ids for ``logprobs`` and counts ``usage``
            (without one, UTF-8 bytes stand in for tokens).
        remember_responses: how many recent responses feedback can refer to.
        close_on_shutdown: close (drain) the services and the feedback loop
            when the server shuts down.

    Raises:
        MissingDependencyError: FastAPI is not installed (``pip install "genarch[serve]"``).
    """
    fastapi = _fastapi()
    server = _Server(
        service,
        embeddings,
        feedback,
        model_name,
        embedding_model_name or f"{model_name}-embeddings",
        keys,
        chat_template,
        tokenizer,
        ResponseMemory(remember_responses if feedback is not None else 0),
    )

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await asyncio.to_thread(server.close)

    app = fastapi.FastAPI(title="genarch", lifespan=lifespan, docs_url=None, redoc_url=None)
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/completions", server.completions),
        ("POST", "/v1/chat/completions", server.chat),
        ("POST", "/v1/embeddings", server.embed),
        ("POST", "/v1/feedback", server.feedback),
        ("GET", "/v1/models", server.models),
        ("GET", "/healthz", server.healthz),
        ("GET", "/readyz", server.readyz),
        ("GET", "/metrics", server.metrics),
    ]
    for method, path, handler in routes:
        app.add_api_route(path, _guarded(handler), methods=[method], include_in_schema=False)

    from starlette.exceptions import HTTPException

    async def not_found(_: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 404
        code = "route_not_found" if status == 404 else "method_not_allowed"
        return _error(HttpError(status, f"no route {status}: {error}", code=code))

    app.add_exception_handler(HTTPException, not_found)
    return app


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=headers)


def _error(error: BaseException) -> Response:
    status, body, headers = describe_failure(error)
    return _json(body, status, headers)


def _guarded(handler: Handler) -> Handler:
    """Any exception of the handler becomes an OpenAI error response: the server never dies."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as error:
            return _error(error)

    from fastapi import Request as RuntimeRequest

    guarded.__name__ = handler.__name__
    # FastAPI reads the signature; the annotation must be the class, not a string
    parameter = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RuntimeRequest
    )
    guarded.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]
    return guarded


class _Server:
    def __init__(
        self,
        service: GenerationService,
        embeddings: EmbeddingService | None,
        feedback: FeedbackLoop | None,
        model_name: str,
        embedding_model_name: str,
        keys: ApiKeyStore | None,
        chat_template: PromptTemplate | None,
        tokenizer: Tokenizer | None,
        memory: ResponseMemory,
    ) -> None:
        if not isinstance(service, GenerationService):
            raise InvalidInputError(f"create_app needs a GenerationService, got {service!r}")
        self.service = service
        self.embeddings = embeddings
        self.feedback_loop = feedback
        self.model_name = model_name
        self.embedding_model_name = embedding_model_name
        self.keys = keys
        self.chat_template = chat_template
        self.tokenizer = tokenizer
        self.memory = memory
        self.created = int(time.time())
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="genarch-http-stream")
        # the feedback loop is only ever touched by this one thread (SQLite connections)
        self.feedback_pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="genarch-feedback"
        )
        wants_redaction = service.config.redact_prompts or service.config.redact_outputs
        self.redactor = PiiRedactor() if wants_redaction else None

    def close(self) -> None:
        self.service.close()
        if self.embeddings is not None:
            self.embeddings.close()
        if self.feedback_loop is not None:
            self.feedback_pool.submit(self.feedback_loop.close).result()
        self.feedback_pool.shutdown()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ the door

    @staticmethod
    def _key(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        return key.strip() if scheme.lower() == "bearer" and key.strip() else None

    def _authorize(self, request: Request, scope: str | None) -> ApiKey | None:
        """The caller's key record for ``scope`` (``None``: any valid key); ``None`` without keys."""
        if self.keys is None:
            return None
        if scope is not None:
            return self.keys.authenticate(self._key(request), scope)
        try:
            return self.keys.authenticate(self._key(request), "admin")
        except AuthorizationError:
            return None  # a valid key, just not an admin one

    async def _body(self, request: Request, limit: int, check: Callable[[int], None]) -> Any:
        """The JSON body, refused (413) past ``limit`` bytes, (400) if not JSON."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > _HARD_BODY_LIMIT:
            check(int(declared))
        data, size = bytearray(), 0
        async for chunk in request.stream():  # read to the end so the client sees the 413
            size += len(chunk)
            if size <= limit:
                data += chunk
            elif size > _HARD_BODY_LIMIT:
                break
        check(size)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as error:
            raise HttpError(
                400, f"the body is not valid JSON: {error}", code="invalid_json"
            ) from None

    async def _generation_body(self, request: Request) -> Any:
        self._authorize(request, "generate")
        return await self._body(
            request, self.service.config.max_body_bytes, self.service.check_body_size
        )

    def _check_model(self, model: str | None, served: str) -> None:
        if model is not None and model != served:
            raise HttpError(
                404,
                f"the model {model!r} is not served here; this server serves {served!r}",
                type_="not_found_error",
                code="model_not_found",
                param="model",
            )

    def _refuse_unsupported(self, body: CompletionRequest | ChatCompletionRequest) -> None:
        if (name := unsupported_field(body)) is not None:
            raise HttpError(
                400, f"{name} is not supported by genarch", code="unsupported", param=name
            )

    def _requests(
        self,
        body: CompletionRequest | ChatCompletionRequest,
        prompts: Sequence[str],
        max_tokens: int | None,
        logprobs: int | None,
    ) -> list[TextRequest]:
        """One TextRequest per prompt and choice; choice ``i`` of a seeded request has ``seed + i``."""
        limit = self.service.config.max_new_tokens if max_tokens is None else max_tokens
        return [
            TextRequest(
                prompt=prompt,
                max_new_tokens=limit,
                temperature=body.temperature,
                top_p=body.top_p,
                top_k=body.top_k,
                min_p=body.min_p,
                repetition_penalty=body.repetition_penalty,
                presence_penalty=body.presence_penalty,
                frequency_penalty=body.frequency_penalty,
                stop=body.stop_strings(),
                logprobs=logprobs,
                seed=None if body.seed is None else body.seed + choice,
            )
            for prompt in prompts
            for choice in range(body.n)
        ]

    async def _generate(self, request: Request, requests: list[TextRequest]) -> list[TextResult]:
        """Submit every request, wait for all; a client that leaves drops those still queued."""
        key = self._key(request)
        futures: list[Future[TextResult]] = []
        try:
            for text_request in requests:
                futures.append(self.service.submit(text_request, api_key=key))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        waiting = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=0.2)
            if done:
                return list(waiting.result())
            if await request.is_disconnected():
                for future in futures:
                    future.cancel()
                waiting.cancel()
                raise HttpError(499, "the client disconnected", code="client_closed_request")

    def _usage(self, prompts: Sequence[str], results: Sequence[TextResult]) -> dict[str, int]:
        prompt = sum(count_tokens(self.tokenizer, p) for p in prompts)
        return usage(prompt, sum(completion_tokens(self.tokenizer, r) for r in results))

    # ----------------------------------------------------------- the routes

    async def completions(self, request: Request) -> Response:
        body = CompletionRequest.model_validate(await self._generation_body(request))
        self._check_model(body.model, self.model_name)
        self._refuse_unsupported(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        requests = self._requests(body, prompts, body.max_tokens, body.logprobs)
        response_id = f"cmpl-{uuid.uuid4().hex}"
        if body.stream:
            return self._stream(request, body, requests, prompts[0], response_id, chat=False)
        results = await self._generate(request, requests)
        self.memory.put(response_id, prompts[0], [r.text for r in results])
        choices = [
            {
                "index": index,
                "text": result.text,
                "logprobs": completion_logprobs(self.tokenizer, result.logprobs)
                if body.logprobs is not None
                else None,
                "finish_reason": finish_reason(result),
            }
            for index, result in enumerate(results)
        ]
        return _json(
            {
                "id": response_id,
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": choices,
                "usage": self._usage([r.prompt for r in requests[:: body.n]], results),
            }
        )

    async def chat(self, request: Request) -> Response:
        body = ChatCompletionRequest.model_validate(await self._generation_body(request))
        self._check_model(body.model, self.model_name)
        self._refuse_unsupported(body)
        if self.chat_template is None:
            raise HttpError(404, "this server has no chat template", code="chat_not_served")
        messages = []
        for index, message in enumerate(body.messages):
            content = message.content
            if not isinstance(content, str):  # a list of parts: only text parts
                if any(part.get("type") != "text" for part in content):
                    raise HttpError(
                        400, "only text content parts are supported", param=f"messages.{index}"
                    )
                content = "".join(str(part.get("text", "")) for part in content)
            role = "system" if message.role == "developer" else message.role
            messages.append({"role": role, "content": content})
        prompt = self.chat_template.render({"messages": messages})
        top = body.top_logprobs if body.top_logprobs is not None else 0
        max_tokens = (
            body.max_completion_tokens
            if body.max_completion_tokens is not None
            else body.max_tokens
        )
        requests = self._requests(body, [prompt], max_tokens, top if body.logprobs else None)
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            return self._stream(request, body, requests, prompt, response_id, chat=True)
        results = await self._generate(request, requests)
        self.memory.put(response_id, prompt, [r.text for r in results])
        choices = [
            {
                "index": index,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": chat_logprobs(self.tokenizer, result.logprobs, top)
                if body.logprobs
                else None,
                "finish_reason": finish_reason(result),
            }
            for index, result in enumerate(results)
        ]
        return _json(
            {
                "id": response_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": choices,
                "usage": self._usage([prompt], results),
            }
        )

    def _stream(
        self,
        request: Request,
        body: CompletionRequest | ChatCompletionRequest,
        requests: list[TextRequest],
        prompt: str,
        response_id: str,
        *,
        chat: bool,
    ) -> Response:
        from fastapi.responses import StreamingResponse

        if len(requests) != 1:
            raise HttpError(400, "stream supports one prompt and n=1", param="n")
        if body.logprobs:
            raise HttpError(400, "logprobs are not streamed; ask without stream", param="logprobs")
        (text_request,) = requests
        stream = self.service.stream(
            text_request, api_key=self._key(request)
        )  # admission errors here
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        kind = "chat.completion.chunk" if chat else "text_completion"
        created = int(time.time())

        def event(
            delta: str | None, finish: str | None, extra: dict[str, Any] | None = None
        ) -> str:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["delta"] = {} if delta is None else {"content": delta}
            else:
                choice["text"] = delta or ""
                choice["logprobs"] = None
            chunk = {
                "id": response_id,
                "object": kind,
                "created": created,
                "model": self.model_name,
            }
            chunk.update(choices=[choice], **(extra or {}))
            return f"data: {json.dumps(chunk)}\n\n"

        async def events() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            pieces: list[str] = []
            try:
                if chat:
                    first = json.loads(event(None, None)[len("data: ") :])
                    first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
                    yield f"data: {json.dumps(first)}\n\n"
                while (
                    piece := await loop.run_in_executor(self.pool, next, stream, None)
                ) is not None:
                    pieces.append(piece)
                    yield event(piece, None)
                text = "".join(pieces)
                produced = count_tokens(self.tokenizer, text)
                finish = "length" if produced >= text_request.max_new_tokens else "stop"
                yield event(None, finish)
                if include_usage:
                    numbers = usage(count_tokens(self.tokenizer, prompt), produced)
                    yield self._usage_chunk(response_id, kind, created, numbers)
                self.memory.put(response_id, prompt, [text])
                yield "data: [DONE]\n\n"
            except Exception as error:  # the request's own error, after the headers went out
                _, payload, _ = describe_failure(error)
                yield f"data: {json.dumps(payload)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                stream.close()  # a client that left cancels the decoding

        return StreamingResponse(events(), media_type="text/event-stream")

    def _usage_chunk(
        self, response_id: str, kind: str, created: int, numbers: dict[str, int]
    ) -> str:
        chunk = {
            "id": response_id,
            "object": kind,
            "created": created,
            "model": self.model_name,
            "choices": [],
            "usage": numbers,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    async def embed(self, request: Request) -> Response:
        if self.embeddings is None:
            raise HttpError(
                404, "this server serves no embedding model", code="embeddings_not_served"
            )
        self._authorize(request, "embed")
        embeddings = self.embeddings
        limit = embeddings.config.max_body_bytes

        def check(size: int) -> None:
            if size > limit:
                raise CapExceededError("max_body_bytes", limit, size, "the request body in bytes")

        body = EmbeddingRequest.model_validate(await self._body(request, limit, check))
        self._check_model(body.model, self.embedding_model_name)
        items = [body.input] if isinstance(body.input, str) else body.input
        if any(not isinstance(item, str) for item in items):
            raise HttpError(400, "token-id input is not supported; send text", param="input")
        texts: list[str] = [str(item) for item in items]
        if body.dimensions is not None and body.dimensions != embeddings.dim:
            raise HttpError(
                400,
                f"dimensions must be {embeddings.dim} (the model's) if given",
                param="dimensions",
            )
        future = embeddings.submit(texts, api_key=self._key(request))
        vectors: torch.Tensor = await asyncio.wrap_future(future)
        data = []
        for index, vector in enumerate(vectors.to(torch.float32).cpu()):
            embedding: Any = vector.tolist()
            if body.encoding_format == "base64":
                embedding = base64.b64encode(vector.numpy().astype("<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(None, text) for text in texts)
        return _json(
            {
                "object": "list",
                "data": data,
                "model": self.embedding_model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def feedback(self, request: Request) -> Response:
        if self.feedback_loop is None:
            raise HttpError(404, "this server records no feedback", code="feedback_not_served")
        key = self._authorize(request, "feedback")
        limit = self.service.config.max_body_bytes
        body = FeedbackRequest.model_validate(
            await self._body(request, limit, self.service.check_body_size)
        )
        remembered = self.memory.get(body.response_id)

        def output(value: int | str | None, param: str) -> str:
            if isinstance(value, str):
                return value
            index = body.choice if value is None else value
            if not 0 <= index < len(remembered.outputs):
                raise HttpError(400, f"the response has no choice {index}", param=param)
            return remembered.outputs[index]

        common: dict[str, Any] = {
            "prompt": self._redacted(remembered.prompt) or " ",
            "model_name": self.model_name,
            "model_version": self.service.model_version,
            "response_id": body.response_id,
            "user": body.user,
            "metadata": {"api_key_id": key.id} if key is not None else {},
        }
        record: Rating | Correction | Preference
        if body.kind == "rating":
            if body.score is None:
                raise HttpError(400, "a rating needs a score between 0 and 1", param="score")
            record = Rating(
                output=output(None, "choice"), score=body.score, comment=body.comment, **common
            )
        elif body.kind == "correction":
            if body.corrected is None:
                raise HttpError(400, "a correction needs corrected", param="corrected")
            record = Correction(output=output(None, "choice"), corrected=body.corrected, **common)
        else:
            if body.chosen is None or body.rejected is None:
                raise HttpError(400, "a preference needs chosen and rejected", param="chosen")
            record = Preference(
                chosen=output(body.chosen, "chosen"),
                rejected=output(body.rejected, "rejected"),
                **common,
            )
        loop = asyncio.get_running_loop()
        feedback_id = await loop.run_in_executor(
            self.feedback_pool, self.feedback_loop.record, record
        )
        return _json({"id": feedback_id, "object": "feedback", "response_id": body.response_id})

    def _redacted(self, text: str) -> str:
        """``text`` with PII replaced when the service redacts (feedback is stored as served)."""
        return self.redactor.redact(text).text if self.redactor is not None else text

    async def models(self, request: Request) -> Response:
        self._authorize(request, None)
        names = [self.model_name] + ([self.embedding_model_name] if self.embeddings else [])
        data = [
            {"id": n, "object": "model", "created": self.created, "owned_by": "genarch"}
            for n in names
        ]
        return _json({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        healths = [self.service.health()] + ([self.embeddings.health()] if self.embeddings else [])
        ready = all(h.ready for h in healths)
        body = {"ready": ready, "services": [h.model_dump(mode="json") for h in healths]}
        return _json(body, 200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        from fastapi.responses import PlainTextResponse

        self._authorize(request, "admin")
        text = self.service.metrics.render_prometheus()
        if self.embeddings is not None and self.embeddings.metrics is not self.service.metrics:
            text += self.embeddings.metrics.render_prometheus()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
