"""OpenAI-shaped response bodies built from genarch's results (no FastAPI here).

Also :class:`ResponseMemory`, the bounded in-memory record of recent
responses that ``POST /v1/feedback`` ties feedback to.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from genarch.deploy.admission import count_tokens
from genarch.errors import NotFoundError
from genarch.protocols import Tokenizer
from genarch.schemas import TextResult, TokenLogprob

__all__ = [
    "Remembered",
    "ResponseMemory",
    "chat_logprobs",
    "completion_logprobs",
    "finish_reason",
    "usage",
]


def finish_reason(result: TextResult) -> str:
    """OpenAI's ``finish_reason``: ``stop`` for a stop string or end token, else ``length``."""
    return "stop" if result.finish_reason == "stop" else "length"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_tokens(tokenizer: Tokenizer | None, result: TextResult) -> int:
    """The result's token count: its token ids, else its text counted like a prompt."""
    return len(result.token_ids) if result.token_ids else count_tokens(tokenizer, result.text)


def _token(tokenizer: Tokenizer | None, token_id: int) -> str:
    return tokenizer.decode([token_id]) if tokenizer is not None else f"token_id:{token_id}"


def completion_logprobs(
    tokenizer: Tokenizer | None, logprobs: Sequence[TokenLogprob] | None
) -> dict[str, Any] | None:
    """The legacy completions ``logprobs`` object (tokens, token_logprobs, top_logprobs, text_offset)."""
    if logprobs is None:
        return None
    tokens = [_token(tokenizer, entry.token_id) for entry in logprobs]
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [entry.logprob for entry in logprobs],
        "top_logprobs": [
            {_token(tokenizer, i): lp for i, lp in entry.alternatives.items()} for entry in logprobs
        ],
        "text_offset": offsets,
    }


def chat_logprobs(
    tokenizer: Tokenizer | None, logprobs: Sequence[TokenLogprob] | None, top: int
) -> dict[str, Any] | None:
    """The chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    if logprobs is None:
        return None

    def item(token_id: int, logprob: float) -> dict[str, Any]:
        token = _token(tokenizer, token_id)
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    content = []
    for entry in logprobs:
        alternatives = sorted(entry.alternatives.items(), key=lambda pair: -pair[1])[:top]
        content.append(
            {
                **item(entry.token_id, entry.logprob),
                "top_logprobs": [item(*a) for a in alternatives],
            }
        )
    return {"content": content}


@dataclass(frozen=True)
class Remembered:
    """What the server keeps of one response for feedback: its prompt(s) and choices."""

    prompt: str
    outputs: tuple[str, ...]
    created: float


class ResponseMemory:
    """The most recent ``capacity`` responses by id (least recently stored dropped first).

    Kept in memory only (a restart forgets them); holds what was sent back,
    so redacted outputs stay redacted.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response_id: str, prompt: str, outputs: Sequence[str]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[response_id] = Remembered(prompt, tuple(outputs), time.time())
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> Remembered:
        """The response ``response_id``.

        Raises:
            NotFoundError: unknown, or forgotten (older than the last ``capacity``).
        """
        with self._lock:
            found = self._items.get(response_id)
        if found is None:
            raise NotFoundError(
                f"no recent response with id {response_id!r} (this server keeps the last "
                f"{self.capacity} responses in memory)"
            )
        return found
