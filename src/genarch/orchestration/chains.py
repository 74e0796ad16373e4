"""Chains: explicit composition of steps, each call traced.

A *step* is any object with a ``name`` and a ``run(input) -> output`` method
(:class:`Step`). Chains are built from four composites, all steps themselves:

* :class:`Chain` — run steps one after another, each output feeding the next;
  adjacent steps whose declared types do not fit are refused when the
  chain is built (:class:`~genarch.errors.PipelineTypeError`, naming both).
* :class:`MapOverBatch` — run one step on every item of a batch.
* :class:`Branch` — run one step or another depending on a condition.
* :class:`Retry` — run a step again when it raises (or its output is
  rejected), then fall back to another step.

There is no operator overloading and no implicit coercion: a plain function
becomes a step only when you wrap it, with a name, in :class:`FunctionStep`;
a lambda or a dict where a step belongs is an
:class:`~genarch.errors.InvalidInputError`.

:func:`run_chain` runs a step with a :class:`~genarch.orchestration.tracing.Tracer`
and returns the output with its :class:`~genarch.orchestration.tracing.Trace`:
one span per call (input, output, latency, token counts), nested the way the
chain is.

A chain or a :class:`~genarch.pipeline.Pipeline`? A pipeline streams a corpus
through typed :class:`~genarch.protocols.DataProcessor` stages, item by item
with per-stage counts, and is saved to JSON and rebuilt from registered
components: use it for data preparation. A chain runs once per request —
render a prompt, retrieve, call a model — and traces every call (input,
output, latency, tokens); its steps hold live objects and plain functions, so
it is built in code and not saved.

Examples:
    >>> strip = FunctionStep("strip", str.strip)
    >>> def shout(text: str) -> str:
    ...     return text.upper() + "!"
    >>> chain = Chain("clean-and-shout", [strip, FunctionStep("shout", shout)])
    >>> run = run_chain(chain, "  hello ")
    >>> run.output
    'HELLO!'
    >>> [(span.name, span.parent_id) for span in run.trace.spans]
    [('clean-and-shout', None), ('strip', 0), ('shout', 0)]
    >>> Chain("bad", [str.strip])
    Traceback (most recent call last):
    ...
    genarch.errors.InvalidInputError: Chain 'bad': step 0 is a plain callable (method_descriptor: <method 'strip' of 'str' objects>); wrap it explicitly: FunctionStep("a name", function)
"""

from __future__ import annotations

import collections.abc as abc
import logging
import typing
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from genarch._deprecated import renamed_names
from genarch._typefit import fits, type_name
from genarch.errors import InvalidInputError, PipelineError, PipelineTypeError
from genarch.orchestration.tracing import Trace, Tracer
from genarch.protocols import Tokenizer
from genarch.validation import describe

__all__ = [
    "Branch",
    "Chain",
    "ChainRun",
    "CompositeStep",
    "FunctionStep",
    "MapOverBatch",
    "Retry",
    "Step",
    "call_step",
    "run_chain",
    "step_types",
]

logger = logging.getLogger(__name__)

# ``Sequence`` was renamed ``Chain`` (it shadowed ``typing.Sequence``); the old name warns.
__getattr__ = renamed_names(__name__, {"Sequence": ("genarch.orchestration.chains", "Chain")})

In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)
T = TypeVar("T")


@runtime_checkable
class Step(Protocol[In_contra, Out_co]):
    """One unit of a chain: a name and ``run(input) -> output``.

    ``run`` raises a :class:`~genarch.errors.GenarchError` for input it cannot
    use. The input and output types are read from ``input_type`` /
    ``output_type`` attributes when present, else from ``run``'s annotations.
    """

    @property
    def name(self) -> str: ...

    def run(self, value: In_contra) -> Out_co: ...


@runtime_checkable
class CompositeStep(Step[In_contra, Out_co], Protocol[In_contra, Out_co]):
    """A step made of steps: it reports its children's calls to a tracer.

    ``run_traced(value, tracer, parent)`` does what ``run`` does, calling its
    children through :func:`call_step` with ``parent`` as their parent span.
    """

    def run_traced(self, value: In_contra, tracer: Tracer, parent: int | None) -> Out_co: ...


# ------------------------------------------------------------------ helpers


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"{where} needs a non-empty name, got {describe(name)}")
    return name


def _check_step(step: object, where: str) -> Step[Any, Any]:
    """Refuse anything that is not a step, with a hint for the usual mistakes."""
    if isinstance(step, Step) and isinstance(getattr(step, "name", None), str):
        return step
    if isinstance(step, abc.Mapping):
        raise InvalidInputError(
            f"{where} is a mapping, not a step; build the step object explicitly"
        )
    if callable(step):
        raise InvalidInputError(
            f"{where} is a plain callable ({describe(step)}); "
            'wrap it explicitly: FunctionStep("a name", function)'
        )
    raise InvalidInputError(f"{where} is not a step (needs name and run(value)): {describe(step)}")


def _hints(function: object) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # builtins, unresolvable forward references, local classes
        return {}


def step_types(step: object) -> tuple[Any, Any]:
    """The input and output types a step declares (``Any`` where it does not say).

    Examples:
        >>> def count(text: str) -> int:
        ...     return len(text)
        >>> step_types(FunctionStep("count", count))
        (<class 'str'>, <class 'int'>)
    """
    declared_in = getattr(step, "input_type", None)
    declared_out = getattr(step, "output_type", None)
    if declared_in is not None and declared_out is not None:
        return declared_in, declared_out
    hints = _hints(getattr(type(step), "run", None))
    params = [name for name in hints if name != "return"]
    in_type = declared_in if declared_in is not None else (hints[params[0]] if params else Any)
    out_type = declared_out if declared_out is not None else hints.get("return", Any)
    return in_type, out_type


def call_step(step: Step[Any, T], value: Any, tracer: Tracer, parent: int | None = None) -> T:
    """Run ``step`` on ``value``, recording a span in ``tracer`` (errors too)."""
    span = tracer.start(step.name, type(step).__name__, value, parent=parent)
    try:
        output: T = (
            step.run_traced(value, tracer, span)
            if isinstance(step, CompositeStep)
            else step.run(value)
        )
    except BaseException as error:
        tracer.fail(span, error)
        raise
    tracer.finish(span, output)
    return output


@dataclass(frozen=True)
class ChainRun(Generic[T]):
    """What :func:`run_chain` returns: the output and the trace of the run."""

    output: T
    trace: Trace


def run_chain(step: Step[Any, T], value: Any, *, tokenizer: Tokenizer | None = None) -> ChainRun[T]:
    """Run a step (usually a composite) and return its output with the trace.

    Args:
        step: what to run.
        value: its input.
        tokenizer: if given, each span counts the tokens of its input and output.

    Raises:
        InvalidInputError: ``step`` is not a step. Whatever the step raises
            propagates too (the trace is lost with it; use a :class:`Tracer`
            and :func:`call_step` yourself to keep it).
    """
    checked = _check_step(step, "run_chain: the step")
    tracer = Tracer(tokenizer=tokenizer)
    output = call_step(checked, value, tracer)
    return ChainRun(output=output, trace=tracer.trace())


class _Composite:
    """Shared by the composites: ``run`` is ``run_traced`` with a throwaway tracer."""

    name: str

    def run(self, value: Any) -> Any:
        """Run the step on ``value`` (no trace kept; see :func:`run_chain`)."""
        return self.run_traced(value, Tracer(), None)

    def run_traced(self, value: Any, tracer: Tracer, parent: int | None) -> Any:
        raise NotImplementedError


# ------------------------------------------------------------------ steps


class FunctionStep(Generic[In_contra, Out_co]):
    """A plain function made into a step, explicitly and with a name.

    The types are read from the function's annotations (``Any`` without them).

    Raises:
        InvalidInputError: no name, or ``function`` is not callable.
    """

    def __init__(self, name: str, function: abc.Callable[[In_contra], Out_co]) -> None:
        self._name = _check_name(name, "FunctionStep")
        if not callable(function):
            raise InvalidInputError(
                f"FunctionStep {name!r} expected a callable, got {describe(function)}"
            )
        self._function = function
        hints = _hints(function)
        params = [key for key in hints if key != "return"]
        self.input_type: Any = hints[params[0]] if params else Any
        self.output_type: Any = hints.get("return", Any)

    @property
    def name(self) -> str:
        """The step's name in traces and errors."""
        return self._name

    def run(self, value: In_contra) -> Out_co:
        """Call the function."""
        return self._function(value)

    def __repr__(self) -> str:
        return (
            f"FunctionStep({self._name!r}, {getattr(self._function, '__name__', self._function)!r})"
        )


class Chain(_Composite):
    """Steps run one after another; each output is the next step's input.

    Raises:
        InvalidInputError: no steps, or an element is not a step.
        PipelineTypeError: a step's declared output type does not fit the next
            step's declared input type (both steps and types are named).

    Examples:
        >>> def length(text: str) -> int:
        ...     return len(text)
        >>> def shout(text: str) -> str:
        ...     return text.upper()
        >>> Chain("oops", [FunctionStep("length", length), FunctionStep("shout", shout)])
        Traceback (most recent call last):
        ...
        genarch.errors.PipelineTypeError: Chain 'oops': step 0 'length' outputs int, but step 1 'shout' expects str
    """

    def __init__(self, name: str, steps: abc.Sequence[Step[Any, Any]]) -> None:
        self.name = _check_name(name, "Chain")
        if not isinstance(steps, list | tuple) or not steps:
            raise InvalidInputError(
                f"Chain {name!r} expected a non-empty list of steps, got {describe(steps)}"
            )
        self.steps = tuple(_check_step(s, f"Chain {name!r}: step {i}") for i, s in enumerate(steps))
        types = [step_types(step) for step in self.steps]
        for index in range(len(types) - 1):
            produced, expected = types[index][1], types[index + 1][0]
            if not fits(produced, expected):
                raise PipelineTypeError(
                    f"Chain {name!r}: step {index} {self.steps[index].name!r} outputs "
                    f"{type_name(produced)}, but step {index + 1} "
                    f"{self.steps[index + 1].name!r} expects {type_name(expected)}"
                )
        self.input_type: Any = types[0][0]
        self.output_type: Any = types[-1][1]

    def run_traced(self, value: Any, tracer: Tracer, parent: int | None) -> Any:
        """Run every step in order under ``parent``."""
        for step in self.steps:
            value = call_step(step, value, tracer, parent)
        return value

    def __repr__(self) -> str:
        return f"Chain({self.name!r}, {[s.name for s in self.steps]})"


class MapOverBatch(_Composite):
    """Runs one step on every item of a list or tuple; returns the list of outputs.

    Raises:
        InvalidInputError: ``step`` is not a step; at run time, the input is not
            a list or tuple.
    """

    def __init__(self, name: str, step: Step[Any, Any]) -> None:
        self.name = _check_name(name, "MapOverBatch")
        self.step = _check_step(step, f"MapOverBatch {name!r}: the step")
        item_in, item_out = step_types(self.step)
        self.input_type: Any = abc.Sequence[item_in]  # type: ignore[valid-type]
        self.output_type: Any = list[item_out]  # type: ignore[valid-type]

    def run_traced(self, value: Any, tracer: Tracer, parent: int | None) -> list[Any]:
        """Run the step on each item, in order."""
        if not isinstance(value, list | tuple):
            raise InvalidInputError(
                f"MapOverBatch {self.name!r} expected a list or tuple of items, got {describe(value)}"
            )
        if parent is not None:
            tracer.annotate(parent, items=len(value))
        return [call_step(self.step, item, tracer, parent) for item in value]


class Branch(_Composite):
    """Runs ``if_true`` when ``condition(input)`` is true, else ``if_false``.

    The span records which branch ran (``attributes["branch"]``).

    Args:
        condition: a function of the input returning a ``bool`` (anything else
            is an error, so a typo cannot pick a branch by truthiness).

    Raises:
        InvalidInputError: a bad step or condition; at run time, a condition
            that does not return a bool.
    """

    def __init__(
        self,
        name: str,
        condition: abc.Callable[[Any], bool],
        if_true: Step[Any, Any],
        if_false: Step[Any, Any],
    ) -> None:
        self.name = _check_name(name, "Branch")
        if not callable(condition) or isinstance(condition, Step):
            raise InvalidInputError(
                f"Branch {name!r}: condition must be a function, got {describe(condition)}"
            )
        self.condition = condition
        self.if_true = _check_step(if_true, f"Branch {name!r}: if_true")
        self.if_false = _check_step(if_false, f"Branch {name!r}: if_false")
        (true_in, true_out), (false_in, false_out) = (
            step_types(self.if_true),
            step_types(self.if_false),
        )
        self.input_type: Any = true_in if true_in == false_in else Any
        self.output_type: Any = true_out if true_out == false_out else true_out | false_out

    def run_traced(self, value: Any, tracer: Tracer, parent: int | None) -> Any:
        """Test the condition, then run the chosen step."""
        verdict = self.condition(value)
        if not isinstance(verdict, bool):
            raise InvalidInputError(
                f"Branch {self.name!r}: the condition returned {describe(verdict)}, not a bool"
            )
        if parent is not None:
            tracer.annotate(parent, branch="if_true" if verdict else "if_false")
        return call_step(self.if_true if verdict else self.if_false, value, tracer, parent)


class Retry(_Composite):
    """Runs a step up to ``attempts`` times, then a ``fallback`` step.

    An attempt fails when the step raises one of ``retry_on`` or when
    ``accept(output)`` is false. Other exceptions propagate at once. Every
    attempt is its own span (``attributes["attempt"]`` on the retry's span
    counts them). Without a fallback, running out of attempts raises
    :class:`~genarch.errors.PipelineError` from the last failure.

    Args:
        step: what to run.
        attempts: how many times to try it (at least 1).
        retry_on: the exception types that count as a failed attempt.
        accept: optional check of an output; false means try again.
        fallback: a step run (once) on the same input when every attempt failed.

    Raises:
        InvalidInputError: bad arguments.

    Examples:
        >>> calls = []
        >>> def flaky(text: str) -> str:
        ...     calls.append(text)
        ...     if len(calls) < 3:
        ...         raise TimeoutError("busy")
        ...     return text.upper()
        >>> step = Retry("patient", FunctionStep("flaky", flaky), attempts=3, retry_on=(TimeoutError,))
        >>> run_chain(step, "ok").output, len(calls)
        ('OK', 3)
    """

    def __init__(
        self,
        name: str,
        step: Step[Any, Any],
        *,
        attempts: int = 3,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        accept: abc.Callable[[Any], bool] | None = None,
        fallback: Step[Any, Any] | None = None,
    ) -> None:
        self.name = _check_name(name, "Retry")
        self.step = _check_step(step, f"Retry {name!r}: the step")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidInputError(
                f"Retry {name!r}: attempts must be an int >= 1, got {describe(attempts)}"
            )
        if not isinstance(retry_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            raise InvalidInputError(
                f"Retry {name!r}: retry_on must be a tuple of exception types, got {describe(retry_on)}"
            )
        if accept is not None and not callable(accept):
            raise InvalidInputError(
                f"Retry {name!r}: accept must be a function, got {describe(accept)}"
            )
        self.attempts = attempts
        self.retry_on = retry_on
        self.accept = accept
        self.fallback = (
            None if fallback is None else _check_step(fallback, f"Retry {name!r}: fallback")
        )
        self.input_type, self.output_type = step_types(self.step)

    def run_traced(self, value: Any, tracer: Tracer, parent: int | None) -> Any:
        """Try the step, then the fallback."""
        last: str = ""
        cause: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            if parent is not None:
                tracer.annotate(parent, attempt=attempt)
            try:
                output = call_step(self.step, value, tracer, parent)
            except self.retry_on as error:
                last, cause = f"{type(error).__name__}: {error}", error
                logger.info("Retry %r: attempt %d failed (%s)", self.name, attempt, last)
                continue
            if self.accept is None or self.accept(output):
                return output
            last, cause = f"output rejected by accept(): {describe(output)}", None
            logger.info("Retry %r: attempt %d rejected", self.name, attempt)
        if self.fallback is not None:
            if parent is not None:
                tracer.annotate(parent, fallback=True)
            return call_step(self.fallback, value, tracer, parent)
        raise PipelineError(
            f"Retry {self.name!r}: all {self.attempts} attempt(s) of {self.step.name!r} failed "
            f"and there is no fallback; last failure: {last}"
        ) from cause
