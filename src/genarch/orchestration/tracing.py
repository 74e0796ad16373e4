"""Traces of chain runs: every step's input, output, latency and token counts.

A :class:`Tracer` records one :class:`Span` per step call, nested by
``parent_id`` (a :class:`~genarch.orchestration.chains.Chain`'s steps are
children of the chain's span). :meth:`Tracer.trace` freezes what was
recorded into a :class:`Trace`, which is written as JSON Lines — one span per
line — and read back exactly.

Inputs and outputs are stored as JSON: records through their ``model_dump``,
tensors as their shape and dtype, anything else unknown as its ``repr``
(cut to ``max_chars``). With a :class:`~genarch.protocols.Tokenizer`, each span
also counts the tokens of the text in its input and output.

Examples:
    >>> tracer = Tracer()
    >>> span = tracer.start("shout", "FunctionStep", "hi")
    >>> tracer.finish(span, "HI")
    >>> trace = tracer.trace()
    >>> [(s.name, s.input, s.output, s.status) for s in trace.spans]
    [('shout', 'hi', 'HI', 'ok')]
    >>> Trace.from_jsonl(trace.to_jsonl()) == trace
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, Field

from genarch._io import atomic_write_text
from genarch.errors import InvalidInputError, NotFoundError
from genarch.protocols import PathLike, Tokenizer
from genarch.schemas import Record
from genarch.validation import describe

__all__ = ["Span", "Trace", "Tracer", "to_json_value"]

JsonValue = Any
"""A value ``json.dumps`` accepts."""


def to_json_value(value: object, max_chars: int = 2000) -> JsonValue:
    """A JSON-ready copy of ``value`` for a trace.

    Examples:
        >>> to_json_value({"a": (1, 2.5, None)})
        {'a': [1, 2.5, None]}
        >>> import torch
        >>> to_json_value(torch.zeros(2, 3))
        {'tensor': {'shape': [2, 3], 'dtype': 'torch.float32'}}
    """
    if value is None or isinstance(value, bool | int | str):
        return (
            value
            if not isinstance(value, str) or len(value) <= max_chars
            else value[:max_chars] + "…"
        )
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, BaseModel):
        return to_json_value(value.model_dump(mode="python"), max_chars)
    if isinstance(value, torch.Tensor):
        return {"tensor": {"shape": list(value.shape), "dtype": str(value.dtype)}}
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v, max_chars) for k, v in value.items()}
    if isinstance(value, SequenceABC | set | frozenset):
        return [to_json_value(v, max_chars) for v in value]
    shown = repr(value)
    return {"repr": shown if len(shown) <= max_chars else shown[:max_chars] + "…"}


def _strings(value: JsonValue) -> list[str]:
    """The string leaves of a JSON value (not the keys)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class Span(Record):
    """One step call.

    Attributes:
        id: position in the trace (0 for the first call).
        parent_id: the span of the composite step that made this call, if any.
        name: the step's name; ``kind`` its class name.
        input, output: JSON copies (``output`` is ``None`` when the call failed).
        started_at: wall-clock start (seconds since the epoch).
        latency_seconds: how long the call took.
        status: ``"ok"`` or ``"error"``; ``error`` says what was raised.
        input_tokens, output_tokens: tokens of the text in input/output, when
            the tracer has a tokeniser.
        attributes: step-specific facts (the branch taken, the attempt number, ...).
    """

    id: Annotated[int, Field(ge=0)]
    parent_id: int | None = None
    name: str
    kind: str
    input: JsonValue = None
    output: JsonValue = None
    started_at: float = 0.0
    latency_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attributes: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class Trace(Record):
    """The spans of one run, in the order the calls started."""

    spans: tuple[Span, ...] = ()

    def children(self, span_id: int | None) -> list[Span]:
        """The spans whose parent is ``span_id`` (``None``: the top-level calls)."""
        return [span for span in self.spans if span.parent_id == span_id]

    def find(self, name: str) -> list[Span]:
        """Every span of the step called ``name``."""
        return [span for span in self.spans if span.name == name]

    def to_jsonl(self) -> str:
        """One JSON object per span, one per line."""
        return "".join(span.model_dump_json() + "\n" for span in self.spans)

    def write_jsonl(self, path: PathLike) -> None:
        """Write :meth:`to_jsonl` to ``path`` atomically."""
        atomic_write_text(path, self.to_jsonl())

    @classmethod
    def from_jsonl(cls, text: str) -> Trace:
        """Parse what :meth:`to_jsonl` wrote.

        Raises:
            InvalidInputError: a line is not a valid span.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"Trace.from_jsonl expected str, got {describe(text)}")
        spans = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    spans.append(Span.parse(line))
                except InvalidInputError as error:
                    raise InvalidInputError(f"trace line {number}: {error}") from None
        return cls(spans=tuple(spans))

    @classmethod
    def read_jsonl(cls, path: PathLike) -> Trace:
        """Read a trace file written by :meth:`write_jsonl`.

        Raises:
            NotFoundError: no such file.
            InvalidInputError: a line is not a valid span.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                return cls.from_jsonl(handle.read())
        except FileNotFoundError:
            raise NotFoundError(f"no trace file at {path}") from None


@dataclass
class _Open:
    id: int
    parent_id: int | None
    name: str
    kind: str
    input: JsonValue
    input_tokens: int | None
    started_at: float
    clock: float
    attributes: dict[str, str | int | float | bool | None] = field(default_factory=dict)


class Tracer:
    """Records spans while a chain runs; create one per run.

    Args:
        tokenizer: counts the tokens of the text in each input and output.
        max_chars: longest string kept in a span (longer ones are cut).
    """

    def __init__(self, *, tokenizer: Tokenizer | None = None, max_chars: int = 2000) -> None:
        if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
            raise InvalidInputError(f"Tracer expected a Tokenizer, got {describe(tokenizer)}")
        self._tokenizer = tokenizer
        self._max_chars = max_chars
        self._spans: dict[int, Span | _Open] = {}

    def _tokens(self, value: JsonValue) -> int | None:
        if self._tokenizer is None:
            return None
        return sum(len(self._tokenizer.encode(text)) for text in _strings(value))

    def start(self, name: str, kind: str, value: object, *, parent: int | None = None) -> int:
        """Open a span for a call of step ``name`` with input ``value``; return its id."""
        data = to_json_value(value, self._max_chars)
        span_id = len(self._spans)
        self._spans[span_id] = _Open(
            id=span_id,
            parent_id=parent,
            name=name,
            kind=kind,
            input=data,
            input_tokens=self._tokens(data),
            started_at=time.time(),
            clock=time.perf_counter(),
        )
        return span_id

    def annotate(self, span_id: int, **attributes: str | int | float | bool | None) -> None:
        """Attach facts to an open span (the branch taken, an attempt number)."""
        current = self._spans[span_id]
        if not isinstance(current, _Open):
            raise InvalidInputError(f"span {span_id} is already finished")
        current.attributes.update(attributes)

    def finish(self, span_id: int, output: object) -> None:
        """Close a span with the step's output."""
        self._close(span_id, output, None)

    def fail(self, span_id: int, error: BaseException) -> None:
        """Close a span whose step raised ``error``."""
        self._close(span_id, None, f"{type(error).__name__}: {error}")

    def _close(self, span_id: int, output: object, error: str | None) -> None:
        current = self._spans.get(span_id)
        if not isinstance(current, _Open):
            raise InvalidInputError(f"span {span_id} is not open")
        data = None if error is not None else to_json_value(output, self._max_chars)
        self._spans[span_id] = Span(
            id=current.id,
            parent_id=current.parent_id,
            name=current.name,
            kind=current.kind,
            input=current.input,
            output=data,
            started_at=current.started_at,
            latency_seconds=max(0.0, time.perf_counter() - current.clock),
            status="ok" if error is None else "error",
            error=error,
            input_tokens=current.input_tokens,
            output_tokens=None if error is not None else self._tokens(data),
            attributes=dict(current.attributes),
        )

    def trace(self) -> Trace:
        """The finished spans so far, in start order (open spans are left out)."""
        return Trace(spans=tuple(s for s in self._spans.values() if isinstance(s, Span)))
