"""Explicit composition of data-processing stages, checked when assembled.

A :class:`Pipeline` is a list of named :class:`~genarch.protocols.DataProcessor`
stages. Assembling it reads each stage's declared element types and refuses a
pair that does not fit, naming both stages and both types — so a mistake is
found when the pipeline is built, never halfway through a run. Running it is
lazy: items flow through every stage one at a time, and a
:class:`PipelineTrace` records per-stage counts and time.

Examples:
    >>> from genarch import Pipeline, Document
    >>> from genarch.data import TextCleaner
    >>> pipe = Pipeline([("clean", TextCleaner())])
    >>> run = pipe.run([Document(id="a", text="  Hello\\u200b   world ")])
    >>> [doc.text for doc in run]
    ['Hello world']
    >>> run.trace.stages[0].items_out
    1
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar, overload, runtime_checkable

from pydantic import BaseModel

from genarch._typefit import fits, stage_types, substitute, type_name
from genarch.errors import (
    ConfigError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PipelineError,
    PipelineTypeError,
)
from genarch.persistence import open_saved, save_component
from genarch.protocols import DataProcessor
from genarch.registry import Registry, builtin_registry
from genarch.schemas import PipelineTrace, StageTrace
from genarch.validation import describe, ensure_iterable

__all__ = ["Pipeline", "PipelineRun", "PipelineTrace", "ReportingProcessor", "StageTrace"]

logger = logging.getLogger(__name__)

FORMAT = "genarch.pipeline/1"
PIPELINE_FILE = "pipeline.json"

In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)
T = TypeVar("T")


@runtime_checkable
class ReportingProcessor(Protocol[In_contra, Out_co]):
    """A processor that also reports counters (``dropped:too_short``, ``duplicates``, ...).

    A pipeline calls ``process_counting`` instead of ``process`` when a stage
    has it, and the counts land in that stage's :class:`StageTrace`.
    """

    def process(self, items: Iterable[In_contra]) -> Iterator[Out_co]: ...

    def process_counting(
        self, items: Iterable[In_contra], counts: collections.Counter[str]
    ) -> Iterator[Out_co]: ...


class _Meter:
    """Mutable counters for one stage while a run is in progress."""

    __slots__ = ("counters", "inclusive", "items_in", "items_out")

    def __init__(self) -> None:
        self.items_in = 0
        self.items_out = 0
        self.inclusive = 0.0  # seconds spent producing this stage's output, upstream included
        self.counters: collections.Counter[str] = collections.Counter()


class PipelineRun(Iterator[T]):
    """A lazy run of a pipeline: iterate for the outputs, read ``trace`` any time."""

    def __init__(
        self,
        outputs: Iterator[T],
        names: Sequence[str],
        components: Sequence[str],
        meters: Sequence[_Meter],
    ) -> None:
        self._outputs = outputs
        self._names = names
        self._components = components
        self._meters = meters
        self._started = time.perf_counter()
        self._elapsed: float | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        try:
            return next(self._outputs)
        except StopIteration:
            if self._elapsed is None:
                self._elapsed = time.perf_counter() - self._started
            raise

    def collect(self) -> list[T]:
        """Run to the end and return every output."""
        return list(self)

    @property
    def trace(self) -> PipelineTrace:
        """A snapshot of the per-stage counts and timings so far."""
        stages = []
        upstream = 0.0
        for name, component, meter in zip(self._names, self._components, self._meters, strict=True):
            stages.append(
                StageTrace(
                    name=name,
                    component=component,
                    items_in=meter.items_in,
                    items_out=meter.items_out,
                    seconds=max(0.0, meter.inclusive - upstream),
                    counters=dict(meter.counters),
                )
            )
            upstream = meter.inclusive
        finished = self._elapsed is not None
        seconds = self._elapsed if finished else time.perf_counter() - self._started
        return PipelineTrace(stages=tuple(stages), finished=finished, seconds=seconds or 0.0)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


Step = DataProcessor[Any, Any] | tuple[str, DataProcessor[Any, Any]]


class Pipeline:
    """Named stream stages run one after another.

    Args:
        steps: processors, each either bare (named after its class in
            snake_case) or as a ``(name, processor)`` pair.

    Raises:
        InvalidInputError: no steps, a step that is not a processor, or a
            duplicate name.
        PipelineTypeError: a stage's output type does not fit the next stage's
            input type (the message names both stages and both types).

    A pipeline is itself a :class:`~genarch.protocols.DataProcessor`, so
    pipelines nest. ``pipe[0]``, ``pipe["clean"]`` give a stage; ``pipe[1:]`` a
    sub-pipeline.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        given: object = steps
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            raise InvalidInputError(f"Pipeline expected a list of steps, got {describe(steps)}")
        if not steps:
            raise InvalidInputError("Pipeline needs at least one step")
        named: list[tuple[str, DataProcessor[Any, Any]]] = []
        for index, step in enumerate(steps):
            if isinstance(step, tuple):
                if len(step) != 2 or not isinstance(step[0], str) or not step[0]:
                    raise InvalidInputError(
                        f"step {index} must be a processor or a (name, processor) pair, "
                        f"got {describe(step)}"
                    )
                name, processor = step
            else:
                name, processor = _snake_case(type(step).__name__), step
                taken = {n for n, _ in named}
                base, suffix = name, 2
                while name in taken:
                    name, suffix = f"{base}_{suffix}", suffix + 1
            if not callable(getattr(processor, "process", None)):
                raise InvalidInputError(
                    f"step {index} ({name!r}) is not a DataProcessor: {describe(processor)} "
                    "has no process(items) method"
                )
            if any(name == existing for existing, _ in named):
                raise InvalidInputError(f"two steps are named {name!r}; step names must be unique")
            named.append((name, processor))
        self._steps: tuple[tuple[str, DataProcessor[Any, Any]], ...] = tuple(named)
        self.input_type, self.output_type = self._check_types()

    # ----------------------------------------------------------------- assembly

    def _check_types(self) -> tuple[Any, Any]:
        first_in, flowing = stage_types(self._steps[0][1])
        previous_name = self._steps[0][0]
        for name, processor in self._steps[1:]:
            accepts, produces = stage_types(processor)
            bindings: dict[Any, Any] = {}
            if not fits(flowing, accepts, bindings):
                raise PipelineTypeError(
                    f"stage {previous_name!r} ({type(self[previous_name]).__name__}) produces "
                    f"{type_name(flowing)}, but the next stage {name!r} "
                    f"({type(processor).__name__}) accepts {type_name(accepts)}. "
                    "Insert a stage that converts one into the other, or reorder the steps."
                )
            flowing = substitute(produces, bindings)
            previous_name = name
        return first_in, flowing

    # ------------------------------------------------------------------ access

    @property
    def steps(self) -> tuple[tuple[str, DataProcessor[Any, Any]], ...]:
        """``(name, processor)`` for every stage, in order."""
        return self._steps

    @property
    def names(self) -> tuple[str, ...]:
        """The stage names, in order."""
        return tuple(name for name, _ in self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    @overload
    def __getitem__(self, key: int | str) -> DataProcessor[Any, Any]: ...

    @overload
    def __getitem__(self, key: slice) -> Pipeline: ...

    def __getitem__(self, key: int | str | slice) -> DataProcessor[Any, Any] | Pipeline:
        if isinstance(key, slice):
            return Pipeline(list(self._steps[key]))
        if isinstance(key, str):
            for name, processor in self._steps:
                if name == key:
                    return processor
            raise NotFoundError(f"no stage named {key!r}; stages: {list(self.names)}")
        if isinstance(key, int):
            try:
                return self._steps[key][1]
            except IndexError:
                raise NotFoundError(
                    f"stage index {key} is out of range for a pipeline of {len(self)} stages"
                ) from None
        raise InvalidInputError(f"index a pipeline by int, str or slice, got {describe(key)}")

    def __repr__(self) -> str:
        inner = ", ".join(f"({name!r}, {type(p).__name__})" for name, p in self._steps)
        return f"Pipeline([{inner}])"

    # --------------------------------------------------------------------- run

    def run(self, items: Iterable[Any]) -> PipelineRun[Any]:
        """Start a lazy run over ``items``; iterate the result for the outputs.

        Raises:
            InvalidInputError: ``items`` is not an iterable of records.
        """
        stream: Iterable[Any] = ensure_iterable(items, "Pipeline.run")
        meters = [_Meter() for _ in self._steps]
        for (_, processor), meter in zip(self._steps, meters, strict=True):
            stream = _metered_stage(processor, stream, meter)
        components = [type(p).__name__ for _, p in self._steps]
        return PipelineRun(iter(stream), self.names, components, meters)

    def process(self, items: Iterable[Any]) -> Iterator[Any]:
        """The :class:`~genarch.protocols.DataProcessor` view: ``run`` without the trace."""
        return self.run(items)

    # ------------------------------------------------------ save and rebuild

    def to_dict(self, registry: Registry | None = None) -> dict[str, Any]:
        """The pipeline's configuration as plain JSON-ready data.

        Every stage must be configurable (have ``config`` and ``from_config``)
        and registered in ``registry`` (default: :func:`builtin_registry`).

        Raises:
            PipelineError: a stage has no config.
            RegistryError: a stage's class is not in the registry.
        """
        registry = registry if registry is not None else builtin_registry()
        steps = []
        for name, processor in self._steps:
            if isinstance(processor, Pipeline):
                config: Any = processor.to_dict(registry)
            else:
                config = getattr(processor, "config", None)
                if not isinstance(config, BaseModel):
                    raise PipelineError(
                        f"stage {name!r} ({type(processor).__name__}) cannot be saved: it has no "
                        "pydantic `config` property (and `from_config` classmethod)"
                    )
                config = config.model_dump(mode="json")
            steps.append(
                {"name": name, "component": registry.name_of(type(processor)), "config": config}
            )
        return {"format": FORMAT, "steps": steps}

    def to_json(self, registry: Registry | None = None) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(registry), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], registry: Registry | None = None) -> Pipeline:
        """Rebuild a pipeline saved with :meth:`to_dict`, resolving names in ``registry``.

        Raises:
            ConfigError: the data is not a saved pipeline.
            RegistryError: a component name is not registered.
        """
        registry = registry if registry is not None else builtin_registry()
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ConfigError(
                f"not a saved genarch pipeline: expected format {FORMAT!r}, "
                f"got {data.get('format') if isinstance(data, Mapping) else describe(data)!r}"
            )
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            raise ConfigError("a saved pipeline needs a list of 'steps'")
        steps: list[Step] = []
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, Mapping) or set(raw) != {"name", "component", "config"}:
                raise ConfigError(
                    f"step {index} must have exactly 'name', 'component' and 'config', got {raw!r}"
                )
            component = registry.resolve(raw["component"])
            if component is Pipeline:
                steps.append((raw["name"], Pipeline.from_dict(raw["config"], registry)))
                continue
            from_config = getattr(component, "from_config", None)
            if from_config is None:
                raise PipelineError(f"{component.__qualname__} has no from_config classmethod")
            steps.append((raw["name"], from_config(raw["config"])))
        return cls(steps)

    @classmethod
    def from_json(cls, text: str, registry: Registry | None = None) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"a saved pipeline must be JSON: {error}") from None
        return cls.from_dict(data, registry)

    def save(self, directory: str | os.PathLike[str], registry: Registry | None = None) -> None:
        """Write the configuration to ``directory/pipeline.json``, atomically.

        Like every genarch component, the save replaces ``directory`` as a
        whole (see :mod:`genarch.persistence`): a crash leaves the previous
        save or the new one, never a mixture.
        """
        data = self.to_dict(registry)
        save_component(
            directory, FORMAT, header={"steps": data["steps"]}, header_file=PIPELINE_FILE
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], registry: Registry | None = None) -> Pipeline:
        """Rebuild a pipeline saved with :meth:`save`.

        Raises:
            NotFoundError: no ``pipeline.json`` in ``directory``.
            IntegrityError: the file is not a valid saved pipeline.
            RegistryError: it names a component the registry does not know.
        """
        saved = open_saved(directory, FORMAT, header_file=PIPELINE_FILE)
        try:
            return cls.from_dict(saved.header, registry)
        except ConfigError as error:
            raise IntegrityError(
                f"the saved pipeline in {str(saved.root)!r} is invalid: {error}"
            ) from None

    def __eq__(self, other: object) -> bool:
        """Equal when the stage names, classes and configs are equal."""
        if not isinstance(other, Pipeline) or len(other) != len(self):
            return False
        for (name_a, a), (name_b, b) in zip(self._steps, other._steps, strict=True):
            if name_a != name_b or type(a) is not type(b):
                return False
            if isinstance(a, Pipeline):
                if a != b:
                    return False
            elif getattr(a, "config", None) != getattr(b, "config", None):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable-looking container: not hashable


def _metered_stage(processor: Any, upstream: Iterable[Any], meter: _Meter) -> Iterator[Any]:
    """Run one stage, counting what goes in and out and the time spent producing output."""

    def counted_input() -> Iterator[Any]:
        for item in upstream:
            meter.items_in += 1
            yield item

    start = time.perf_counter()
    if isinstance(processor, ReportingProcessor):
        outputs = iter(processor.process_counting(counted_input(), meter.counters))
    else:
        outputs = iter(processor.process(counted_input()))
    meter.inclusive += time.perf_counter() - start
    while True:
        start = time.perf_counter()
        try:
            item = next(outputs)
        except StopIteration:
            meter.inclusive += time.perf_counter() - start
            return
        meter.inclusive += time.perf_counter() - start
        meter.items_out += 1
        yield item
