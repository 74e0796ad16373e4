"""The request bodies of genarch's OpenAI-compatible HTTP routes, and OpenAI's error shape.

**Unknown fields are ignored** (OpenAI clients and the frameworks on top of
them send fields a server may not know, e.g. ``parallel_tool_calls`` or
``service_tier``). **Known fields genarch cannot honour are refused** with a
400 naming them when they ask for something (``tools``, ``logit_bias``,
``echo``, ``best_of`` above 1, ``suffix``, ``response_format`` other than
text, token-id prompts). ``top_k``, ``min_p`` and ``repetition_penalty`` are
accepted as extra body fields (the vLLM convention; the ``openai`` client
sends them with ``extra_body=``).

A body that is not JSON is a 400; a body of the wrong shape or types a 422
naming the field (``param``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "UNSUPPORTED",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "CompletionRequest",
    "EmbeddingRequest",
    "FeedbackRequest",
    "StreamOptions",
    "error_body",
]

MAX_STOP = 16
MAX_CHOICES = 16


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampling(_Body):
    """Fields completions and chat share (OpenAI's names, then the vLLM-style extras)."""

    model: str | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES)] = 1
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    # vLLM-style extra body fields
    top_k: Annotated[int, Field(ge=1)] | None = None
    min_p: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    # known to OpenAI, refused when they ask for something (see UNSUPPORTED)
    logit_bias: dict[str, float] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return tuple(s for s in stops if s)


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: ``prompt`` is one string or a list of strings."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=MAX_CHOICES)]
    max_tokens: Annotated[int, Field(ge=0)] | None = 16
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool = False
    best_of: Annotated[int, Field(ge=1)] | None = None
    suffix: str | None = None


class ChatMessageIn(_Body):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=0)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None


class EmbeddingRequest(_Body):
    """``POST /v1/embeddings``: ``input`` is a string or a list of strings."""

    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None


class FeedbackRequest(_Body):
    """``POST /v1/feedback``: a rating, correction or preference about one response.

    ``response_id`` is the ``id`` of a response this server gave (it keeps the
    most recent ones in memory); ``choice`` picks one of its choices. A
    preference names two choices of the same response (``chosen`` and
    ``rejected`` as indices) or gives their texts.
    """

    kind: Literal["rating", "correction", "preference"]
    response_id: Annotated[str, Field(min_length=1, max_length=128)]
    choice: Annotated[int, Field(ge=0)] = 0
    score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    corrected: str | None = None
    chosen: int | str | None = None
    rejected: int | str | None = None
    user: Annotated[str, Field(max_length=256)] | None = None


def _asks(request: BaseModel, name: str) -> bool:
    value = getattr(request, name, None)
    if name == "best_of":
        return value is not None and value > 1
    if name == "response_format":
        return value is not None and value.get("type", "text") != "text"
    if name == "echo":
        return bool(value)
    return value not in (None, {}, [], "")


UNSUPPORTED = ("logit_bias", "tools", "functions", "response_format", "echo", "best_of", "suffix")
"""Fields OpenAI knows that genarch refuses (with a 400 naming them) when they ask for something."""


def unsupported_field(request: BaseModel) -> str | None:
    """The first field of :data:`UNSUPPORTED` that ``request`` sets to something, else ``None``."""
    return next((name for name in UNSUPPORTED if _asks(request, name)), None)


def error_body(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
