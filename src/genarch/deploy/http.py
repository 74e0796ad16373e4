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
next step and frees its slot. A non-streaming client that disconnects cancels
its request's future: under continuous batching (the default for genarch's
``TextGenerator``) its row is dropped at the next step, even mid-decoding;
under micro-batches it is dropped only while it still waits for a slot, since
a running ``generate_batch`` call cannot be interrupted.

Request fields and errors: :mod:`genarch.deploy.http_models` and
:mod:`genarch.deploy.http_errors`.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import torch

from genarch.data.pii_redaction import PiiRedactor
from genarch.deploy.admission import count_tokens
from genarch.deploy.embedding_service import EmbeddingService
from genarch.deploy.http_errors import HttpError, describe_failure, json_response
from genarch.deploy.http_generation import GenerationRoutes
from genarch.deploy.http_models import (
    EmbeddingRequest,
    FeedbackRequest,
)
from genarch.deploy.http_responses import (
    ResponseMemory,
)
from genarch.deploy.keys import ApiKey, ApiKeyStore
from genarch.deploy.service import GenerationService
from genarch.deploy.serving_errors import AuthorizationError, CapExceededError
from genarch.errors import InvalidInputError, missing_dependency
from genarch.protocols import FeedbackLoop, PromptTemplate, Tokenizer
from genarch.schemas import Correction, Preference, Rating

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
            when the server shuts down. The same closing is
            ``app.state.close_services``, for a host that runs the lifespan
            itself (:class:`~genarch.deploy.http_startup.LoadingApp`).

    Raises:
        MissingDependencyError: FastAPI is not installed (``pip install "genarch[serve]"``).
    """
    fastapi = _fastapi()
    server = Door(
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

    generation = GenerationRoutes(server)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await asyncio.to_thread(server.close)

    app: FastAPI = fastapi.FastAPI(
        title="genarch", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/completions", generation.completions),
        ("POST", "/v1/chat/completions", generation.chat),
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
    # what the lifespan runs at shutdown, for a host that handles the lifespan itself
    # (genarch serve's LoadingApp, genarch.deploy.http_startup)
    app.state.close_services = server.close
    return app


def _error(error: BaseException) -> Response:
    status, body, headers = describe_failure(error)
    return json_response(body, status, headers)


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


class Door:
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
    def key(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        return key.strip() if scheme.lower() == "bearer" and key.strip() else None

    def authorize(self, request: Request, scope: str | None) -> ApiKey | None:
        """The caller's key record for ``scope`` (``None``: any valid key); ``None`` without keys."""
        if self.keys is None:
            return None
        if scope is not None:
            return self.keys.authenticate(self.key(request), scope)
        try:
            return self.keys.authenticate(self.key(request), "admin")
        except AuthorizationError:
            return None  # a valid key, just not an admin one

    async def read_body(self, request: Request, limit: int, check: Callable[[int], None]) -> Any:
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

    async def generation_body(self, request: Request) -> Any:
        self.authorize(request, "generate")
        return await self.read_body(
            request, self.service.config.max_body_bytes, self.service.check_body_size
        )

    def check_model(self, model: str | None, served: str) -> None:
        if model is not None and model != served:
            raise HttpError(
                404,
                f"the model {model!r} is not served here; this server serves {served!r}",
                type_="not_found_error",
                code="model_not_found",
                param="model",
            )

    async def embed(self, request: Request) -> Response:
        if self.embeddings is None:
            raise HttpError(
                404, "this server serves no embedding model", code="embeddings_not_served"
            )
        self.authorize(request, "embed")
        embeddings = self.embeddings
        limit = embeddings.config.max_body_bytes

        def check(size: int) -> None:
            if size > limit:
                raise CapExceededError("max_body_bytes", limit, size, "the request body in bytes")

        body = EmbeddingRequest.model_validate(await self.read_body(request, limit, check))
        self.check_model(body.model, self.embedding_model_name)
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
        future = embeddings.submit(texts, api_key=self.key(request))
        vectors: torch.Tensor = await asyncio.wrap_future(future)
        data = []
        for index, vector in enumerate(vectors.to(torch.float32).cpu()):
            embedding: Any = vector.tolist()
            if body.encoding_format == "base64":
                embedding = base64.b64encode(vector.numpy().astype("<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(None, text) for text in texts)
        return json_response(
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
        key = self.authorize(request, "feedback")
        limit = self.service.config.max_body_bytes
        body = FeedbackRequest.model_validate(
            await self.read_body(request, limit, self.service.check_body_size)
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
        return json_response(
            {"id": feedback_id, "object": "feedback", "response_id": body.response_id}
        )

    def _redacted(self, text: str) -> str:
        """``text`` with PII replaced when the service redacts (feedback is stored as served)."""
        return self.redactor.redact(text).text if self.redactor is not None else text

    async def models(self, request: Request) -> Response:
        self.authorize(request, None)
        names = [self.model_name] + ([self.embedding_model_name] if self.embeddings else [])
        data = [
            {"id": n, "object": "model", "created": self.created, "owned_by": "genarch"}
            for n in names
        ]
        return json_response({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        healths = [self.service.health()] + ([self.embeddings.health()] if self.embeddings else [])
        ready = all(h.ready for h in healths)
        body = {"ready": ready, "services": [h.model_dump(mode="json") for h in healths]}
        return json_response(body, 200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        from fastapi.responses import PlainTextResponse

        self.authorize(request, "admin")
        text = self.service.metrics.render_prometheus()
        if self.embeddings is not None and self.embeddings.metrics is not self.service.metrics:
            text += self.embeddings.metrics.render_prometheus()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
