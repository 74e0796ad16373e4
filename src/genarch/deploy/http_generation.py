"""The generation routes of genarch's HTTP server: completions and chat, streamed or not.

Split from :mod:`genarch.deploy.http` (which holds the app, the door and the
other routes); see it for the behaviour.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from genarch.deploy.admission import count_tokens
from genarch.deploy.http_errors import HttpError, describe_failure, json_response
from genarch.deploy.http_models import ChatCompletionRequest, CompletionRequest, unsupported_field
from genarch.deploy.http_responses import (
    chat_logprobs,
    completion_logprobs,
    completion_tokens,
    finish_reason,
    usage,
)
from genarch.schemas import TextRequest, TextResult

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.responses import Response

    from genarch.deploy.http import Door

__all__ = ["GenerationRoutes"]


class GenerationRoutes:
    """``POST /v1/completions`` and ``POST /v1/chat/completions`` over the door's service."""

    def __init__(self, door: Door) -> None:
        self.door = door

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
        limit = self.door.service.config.max_new_tokens if max_tokens is None else max_tokens
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
        key = self.door.key(request)
        futures: list[Future[TextResult]] = []
        try:
            for text_request in requests:
                futures.append(self.door.service.submit(text_request, api_key=key))
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
        prompt = sum(count_tokens(self.door.tokenizer, p) for p in prompts)
        return usage(prompt, sum(completion_tokens(self.door.tokenizer, r) for r in results))

    # ----------------------------------------------------------- the routes

    async def completions(self, request: Request) -> Response:
        body = CompletionRequest.model_validate(await self.door.generation_body(request))
        self.door.check_model(body.model, self.door.model_name)
        self._refuse_unsupported(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        requests = self._requests(body, prompts, body.max_tokens, body.logprobs)
        response_id = f"cmpl-{uuid.uuid4().hex}"
        if body.stream:
            return self._stream(request, body, requests, prompts[0], response_id, chat=False)
        results = await self._generate(request, requests)
        self.door.memory.put(response_id, prompts[0], [r.text for r in results])
        choices = [
            {
                "index": index,
                "text": result.text,
                "logprobs": completion_logprobs(self.door.tokenizer, result.logprobs)
                if body.logprobs is not None
                else None,
                "finish_reason": finish_reason(result),
            }
            for index, result in enumerate(results)
        ]
        return json_response(
            {
                "id": response_id,
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.door.model_name,
                "choices": choices,
                "usage": self._usage([r.prompt for r in requests[:: body.n]], results),
            }
        )

    async def chat(self, request: Request) -> Response:
        body = ChatCompletionRequest.model_validate(await self.door.generation_body(request))
        self.door.check_model(body.model, self.door.model_name)
        self._refuse_unsupported(body)
        if self.door.chat_template is None:
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
        prompt = self.door.chat_template.render({"messages": messages})
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
        self.door.memory.put(response_id, prompt, [r.text for r in results])
        choices = [
            {
                "index": index,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": chat_logprobs(self.door.tokenizer, result.logprobs, top)
                if body.logprobs
                else None,
                "finish_reason": finish_reason(result),
            }
            for index, result in enumerate(results)
        ]
        return json_response(
            {
                "id": response_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.door.model_name,
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
        stream = self.door.service.stream(
            text_request, api_key=self.door.key(request)
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
                "model": self.door.model_name,
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
                    piece := await loop.run_in_executor(self.door.pool, next, stream, None)
                ) is not None:
                    pieces.append(piece)
                    yield event(piece, None)
                text = "".join(pieces)
                produced = count_tokens(self.door.tokenizer, text)
                finish = "length" if produced >= text_request.max_new_tokens else "stop"
                yield event(None, finish)
                if include_usage:
                    numbers = usage(count_tokens(self.door.tokenizer, prompt), produced)
                    yield self._usage_chunk(response_id, kind, created, numbers)
                self.door.memory.put(response_id, prompt, [text])
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
            "model": self.door.model_name,
            "choices": [],
            "usage": numbers,
        }
        return f"data: {json.dumps(chunk)}\n\n"
