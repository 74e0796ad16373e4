"""What each request of a decoding call has produced so far, and whether it is finished.

:class:`~genarch.models.generation.generator.TextGenerator` keeps one
:class:`DecodingRow` per request; after every step :func:`record_tokens` adds
each unfinished row's new token (with its log-probability and alternatives
when asked for) and the row decides whether it stops: a stop token or string
(``"stop"``), ``max_new_tokens`` (``"length"``) or the end of the model's
context (``"end"``: prompt and output hold ``context_length + 1`` tokens, the
last predicted from a full context, as in transformers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

from genarch.models.generation.detokenizer import IncrementalDetokenizer
from genarch.schemas import TextRequest, TextResult, TokenLogprob

__all__ = ["DecodingRow", "record_tokens"]


@dataclass
class DecodingRow:
    """What one request has produced so far, and whether it is finished."""

    request: TextRequest
    prompt_ids: list[int]
    context_length: int
    detokenizer: IncrementalDetokenizer
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: Literal["length", "stop", "end"] | None = None

    def add(self, token: int, logprob: float | None, alternatives: dict[int, float] | None) -> None:
        request = self.request
        self.token_ids.append(token)
        if logprob is not None:
            self.logprobs.append(
                TokenLogprob(token_id=token, logprob=logprob, alternatives=alternatives or {})
            )
        if token in request.stop_token_ids or self.detokenizer.push(token):
            self.finish_reason = "stop"
        elif len(self.token_ids) >= request.max_new_tokens:
            self.finish_reason = "length"
        elif len(self.prompt_ids) + len(self.token_ids) > self.context_length:
            # The context is full and the last token was predicted from it: another
            # one would need a position the model does not have.
            self.finish_reason = "end"

    def result(self) -> TextResult:
        return TextResult(
            text=self.detokenizer.text,
            token_ids=tuple(self.token_ids),
            finish_reason=self.finish_reason or "length",
            logprobs=tuple(self.logprobs) if self.request.logprobs is not None else None,
        )


def record_tokens(rows: list[DecodingRow], tokens: Tensor, logits: Tensor | None, top: int) -> None:
    """Add each unfinished row's new token, with its log-probability and ``top`` alternatives
    when ``logits`` are given."""
    chosen = tokens.tolist()
    logprobs: list[float] | None = None
    alternatives: list[list[tuple[int, float]]] | None = None
    if logits is not None:
        log_softmax = logits.log_softmax(dim=-1)
        logprobs = log_softmax.gather(1, tokens[:, None])[:, 0].tolist()
        if top:
            values, ids = log_softmax.topk(top, dim=-1)  # best first
            alternatives = [
                list(zip(i, v, strict=True))
                for i, v in zip(ids.tolist(), values.tolist(), strict=True)
            ]
    for i, row in enumerate(rows):
        if row.finish_reason is not None:
            continue
        want = row.request.logprobs
        if logprobs is None or want is None:
            row.add(chosen[i], None, None)
        else:
            row.add(chosen[i], logprobs[i], dict(alternatives[i][:want]) if alternatives else {})
