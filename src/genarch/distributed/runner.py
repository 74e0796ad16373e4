"""Run a :class:`~genarch.pipeline.Pipeline` on Ray Data, with the local runner's trace.

:class:`RayRunner` turns each stage of a pipeline into one ``map_batches``
step of a Ray Data dataset and streams the outputs back to the driver:

* a stage that holds a model (it is, or one of its attributes is, a
  ``torch.nn.Module``) runs on a pool of actors, so the model is loaded once
  per actor and kept warm;
* every other stage runs as stateless Ray tasks (Ray fuses consecutive task
  stages into one task per batch).

**Which stages can be split.** Ray hands each worker a batch, so a stage
runs once per batch instead of once over the whole stream. That gives the
local result only when a stage's output for a batch is the concatenation of
its outputs for each item — no state across items. The built-in stages that
work one item at a time (:data:`~genarch.distributed.placement.PER_ITEM_STAGES`) are known; a stage that
must see every item (exact and near-duplicate removal keep the *first* copy
of a text) is refused when the run is assembled (:meth:`RayRunner.plan`), with
a :class:`~genarch.errors.PipelineError` naming the stage. So is any stage
the runner does not know, until you declare it with ``placement={"name":
"auto"}`` (or ``"tasks"``, ``"actors"``): the runner will not guess that your
stage keeps no state. Global stages are not silently run on the driver: that would pull
the whole stream through one machine halfway through a "distributed" run.
Split the pipeline there instead (see ``docs/concepts/scaling-out.md``).

**The trace.** Each batch carries a small record of what every stage did to
it (items in and out, seconds, the stage's counters) along with its items, so
the counts the driver adds up are those of the batches that were delivered:
a batch that a killed worker had to redo is counted once. The result is the
same :class:`~genarch.schemas.PipelineTrace` the local runner gives, with
equal counts and counters; ``seconds`` of a stage is the time its batches
spent inside the stage, summed over all workers (CPU-seconds of the cluster,
not wall time), and the trace's own ``seconds`` is the driver's wall time.

**Order.** Outputs are equal to the local run's as a multiset. Ray Data
delivers finished batches as they come, so their order varies from run to
run unless ``preserve_order=True``, which gives exactly the local order (at
some cost to throughput: a slow batch holds back the ones behind it).
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import Annotated, Any, Self

import numpy as np
from pydantic import BaseModel, Field

from genarch.configured import Configured
from genarch.distributed._cluster import check_address, connect_ray, genarch_cause
from genarch.distributed.placement import PlacementSetting, RayPlan, plan_pipeline
from genarch.errors import GenarchError, InvalidInputError
from genarch.pipeline import Pipeline, ReportingProcessor
from genarch.schemas import Config, PipelineTrace, StageTrace
from genarch.validation import ensure_iterable

__all__ = ["RayPipelineRun", "RayRunner", "RayRunnerConfig"]

logger = logging.getLogger(__name__)

_WHERE = "RayRunner"


class RayRunnerConfig(Config):
    """Settings of :class:`RayRunner`.

    Attributes:
        batch_size: items handed to a stage per call (one Ray Data batch).
        actor_pool_size: actors per stage that holds a model (each loads it once).
        preserve_order: deliver outputs in the local runner's order (slower:
            a slow batch holds back the rest); otherwise in completion order.
        placement: per stage name, ``"auto"``, ``"tasks"`` or ``"actors"``.
            Declares a stage of your own as working one item at a time
            (required for any stage not in
            :data:`~genarch.distributed.placement.PER_ITEM_STAGES`; ``"auto"``
            puts it on actors when it holds a torch model, else on tasks), or
            moves a built-in stage. A stage that needs all items cannot be placed.
        max_restarts: times Ray restarts an actor that died (``-1``: always).
        max_task_retries: times Ray retries a batch whose worker or actor died
            (``-1``: always). Errors raised by a stage itself are not retried.
        progress_bars: show Ray Data's progress bars while running.
    """

    batch_size: Annotated[int, Field(ge=1)] = 64
    actor_pool_size: Annotated[int, Field(ge=1)] = 2
    preserve_order: bool = False
    placement: dict[str, PlacementSetting] = Field(default_factory=dict)
    max_restarts: Annotated[int, Field(ge=-1)] = 3
    max_task_retries: Annotated[int, Field(ge=-1)] = 3
    progress_bars: bool = False


# -------------------------------------------------------- what travels in a batch


class _Item:
    """One pipeline item in a Ray Data row: opaque to Arrow, so nothing converts it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Item, (self.value,))


class _Counts:
    """What the stages did to some batches: ``stage index -> (in, out, seconds, counters)``."""

    __slots__ = ("stages",)

    def __init__(self, stages: dict[int, tuple[int, int, float, dict[str, int]]] | None = None):
        self.stages = {} if stages is None else stages

    def add(
        self, stage: int, items_in: int, items_out: int, seconds: float, counters: dict[str, int]
    ) -> None:
        i, o, s, c = self.stages.get(stage, (0, 0, 0.0, {}))
        merged = collections.Counter(c)
        merged.update(counters)
        self.stages[stage] = (i + items_in, o + items_out, s + seconds, dict(merged))

    def update(self, other: _Counts) -> None:
        for stage, counts in other.stages.items():
            self.add(stage, *counts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Counts, (self.stages,))


class _Failed:
    """A genarch error a stage raised on a worker, carried to the driver to be raised there.

    Ray Data would wrap it in its own ``UserCodeException`` and lose the
    original on the way; carried like this, the caller gets the error itself.
    """

    __slots__ = ("error",)

    def __init__(self, error: GenarchError) -> None:
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Failed, (self.error,))


def _object_column(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    """A 1-d object array of exactly ``values`` (numpy would unpack iterable records)."""
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


def _apply_stage(processor: Any, index: int, batch: Mapping[str, Any]) -> dict[str, Any]:
    """Run one stage over the items of a batch; pass the counts of earlier stages along."""
    items: list[Any] = []
    carried = _Counts()
    failures: list[_Failed] = []
    for value in batch["item"]:
        if isinstance(value, _Failed):
            failures.append(value)
        elif isinstance(value, _Counts):
            carried.update(value)
        else:
            items.append(value.value)
    counts: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    outputs: list[Any] = []
    try:
        if items and isinstance(processor, ReportingProcessor):
            outputs = list(processor.process_counting(iter(items), counts))
        elif items:
            outputs = list(processor.process(iter(items)))
    except GenarchError as error:
        failures.append(_Failed(error))
    seconds = time.perf_counter() - start
    carried.add(index, len(items), len(outputs), seconds, dict(counts))
    return {"item": _object_column([*map(_Item, outputs), carried, *failures])}


class _Stage:
    """One stage as a Ray Data function: shipped with each task, or held by an actor.

    On an actor pool Ray builds it once per actor (``fn_constructor_args``), so a
    stage's model is deserialised once per actor and kept for every batch.
    """

    def __init__(self, processor: Any, index: int) -> None:
        self.processor = processor
        self.index = index

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return _apply_stage(self.processor, self.index, batch)


class _ToRecords:
    """First step for a Dataset input: each row (the record's fields) to the input record."""

    def __init__(self, record: type[BaseModel]) -> None:
        self.record = record

    def __call__(self, table: Any) -> dict[str, Any]:
        rows = table.to_pylist()
        return {"item": _object_column([_Item(self.record.model_validate(r)) for r in rows])}


# ------------------------------------------------------------------- the run


class RayPipelineRun(Iterator[Any]):
    """A streaming run on Ray: iterate for the outputs, read ``trace`` any time.

    ``trace`` adds up the counts of the batches delivered so far; it is
    ``finished`` once the last batch has arrived.
    """

    def __init__(self, batches: Iterator[Any], plan: RayPlan) -> None:
        self._batches = batches
        self._plan = plan
        self._counts = _Counts()
        self._pending: collections.deque[Any] = collections.deque()
        self._started = time.perf_counter()
        self._elapsed: float | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        while not self._pending:
            try:
                batch = next(self._batches)
            except StopIteration:
                if self._elapsed is None:
                    self._elapsed = time.perf_counter() - self._started
                raise
            except Exception as error:
                raise genarch_cause(error) from error
            for value in batch["item"]:
                if isinstance(value, _Failed):
                    raise value.error
                if isinstance(value, _Counts):
                    self._counts.update(value)
                else:
                    self._pending.append(value.value)
        return self._pending.popleft()

    def collect(self) -> list[Any]:
        """Run to the end and return every output."""
        return list(self)

    @property
    def plan(self) -> RayPlan:
        """Where each stage ran."""
        return self._plan

    @property
    def trace(self) -> PipelineTrace:
        """Per-stage counts, counters and worker seconds of the batches delivered so far."""
        stages = []
        for index, stage in enumerate(self._plan.stages):
            items_in, items_out, seconds, counters = self._counts.stages.get(index, (0, 0, 0.0, {}))
            stages.append(
                StageTrace(
                    name=stage.name,
                    component=stage.component,
                    items_in=items_in,
                    items_out=items_out,
                    seconds=seconds,
                    counters=counters,
                )
            )
        finished = self._elapsed is not None
        elapsed = self._elapsed if finished else time.perf_counter() - self._started
        return PipelineTrace(stages=tuple(stages), finished=finished, seconds=elapsed or 0.0)


# ------------------------------------------------------------------ the runner


class RayRunner(Configured[RayRunnerConfig]):
    """Runs a :class:`~genarch.pipeline.Pipeline` over Ray Data (``pip install 'genarch[ray]'``).

    Args:
        config: a :class:`RayRunnerConfig`; keyword fields are shorthand.
        address: the Ray cluster to connect to when this process has not
            connected yet (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.5:6379"``);
            ``None`` uses the Ray this process already started or joined
            (``ray.init(...)``). Connecting happens on the first :meth:`run`.

    Raises:
        ConfigError: bad settings, or ``address`` is not a non-empty str.

    The runner starts nothing of its own: it submits Ray Data work to the
    cluster the process is connected to, so the same code runs on a laptop's
    ``ray.init(num_cpus=2)`` and on a cluster. See the module docstring for
    which stages can be split, what the trace means and the order of outputs.

    Examples:
        >>> from genarch import Pipeline
        >>> from genarch.data import Chunker, ExactDeduplicator, TextCleaner
        >>> runner = RayRunner(batch_size=32)
        >>> print(runner.plan(Pipeline([TextCleaner(), Chunker(max_tokens=64)])).summary())
        text_cleaner     TextCleaner          tasks   works one item at a time
        chunker          Chunker              tasks   works one item at a time
        >>> runner.plan(Pipeline([TextCleaner(), ExactDeduplicator()]))
        Traceback (most recent call last):
        ...
        genarch.errors.PipelineError: stage 'exact_deduplicator' (ExactDeduplicator) cannot run on Ray one batch at a time: it keeps the first copy of each text, so it must see every document. Run the pipeline up to it on Ray with preserve_order=True, apply it on the driver, and run the rest on Ray; or remove duplicates on the cluster first (docs: concepts/scaling-out.md, 'Deduplication at scale')
    """

    def __init__(
        self,
        config: RayRunnerConfig | Mapping[str, Any] | None = None,
        *,
        address: str | None = None,
        **fields: Any,
    ) -> None:
        Configured.__init__(self, config, **fields)
        self.address = check_address(address, _WHERE)

    # ---------------------------------------------------------------- assembly

    def plan(self, pipeline: Pipeline) -> RayPlan:
        """Place every stage of ``pipeline`` on Ray, or refuse naming the stage.

        Needs no Ray connection: a pipeline that cannot run distributed is
        refused here, before any work is submitted.

        Raises:
            InvalidInputError: ``pipeline`` is not a Pipeline.
            ConfigError: ``placement`` names a stage the pipeline does not have.
            PipelineError: a stage needs every item (e.g. deduplication), or is
                not known to work one item at a time and was not declared.
        """
        return plan_pipeline(pipeline, self.config.placement, _WHERE)

    # --------------------------------------------------------------------- run

    def connect(self) -> ModuleType:
        """The ``ray`` module, connected: to ``address`` if this process is not yet.

        Raises:
            MissingDependencyError: Ray is not installed.
            ConfigError: no Ray is running in this process and no ``address`` was given.
        """
        return connect_ray(self.address, _WHERE)

    def run(self, pipeline: Pipeline, items: Iterable[Any] | Any) -> RayPipelineRun:
        """Start a streaming run of ``pipeline`` over ``items`` on Ray.

        Args:
            pipeline: the pipeline; checked by :meth:`plan` first.
            items: the input records, either an iterable on the driver (sent
                to the cluster in blocks of ``batch_size``) or a
                ``ray.data.Dataset`` read on the cluster, whose rows are the
                pipeline's input records by field (e.g. ``id``, ``text``,
                ``metadata`` for documents).

        Returns:
            A :class:`RayPipelineRun`: iterate it for the outputs; its
            ``trace`` is the local runner's record type.

        Raises:
            InvalidInputError: ``items`` is neither an iterable nor a Dataset,
                or a Dataset for a pipeline whose input is not a record type.
            PipelineError, ConfigError: see :meth:`plan` and :meth:`connect`.
            GenarchError: whatever a stage raised on a worker (its own error).
        """
        plan = self.plan(pipeline)
        ray = self.connect()
        dataset = self._input(ray, pipeline, items)
        config = self.config
        for index, (stage, (_, processor)) in enumerate(
            zip(plan.stages, pipeline.steps, strict=True)
        ):
            if stage.placement == "actors":
                dataset = dataset.map_batches(
                    _Stage,
                    fn_constructor_args=(processor, index),
                    batch_size=config.batch_size,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=config.actor_pool_size),
                    max_restarts=config.max_restarts,
                    max_task_retries=config.max_task_retries,
                )
            else:
                dataset = dataset.map_batches(
                    _Stage(processor, index),
                    batch_size=config.batch_size,
                    batch_format="numpy",
                    max_retries=config.max_task_retries,
                )
        context = dataset.context  # this run's copy of Ray Data's settings
        context.execution_options.preserve_order = config.preserve_order
        context.enable_progress_bars = config.progress_bars
        context.enable_fallback_to_arrow_object_ext_type = True  # records stay Python objects
        logger.info("running on Ray:\n%s", plan.summary())
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        return RayPipelineRun(batches, plan)

    def _input(self, ray: ModuleType, pipeline: Pipeline, items: object) -> Any:
        """The input as a Ray Data dataset of boxed records."""
        if isinstance(items, ray.data.Dataset):
            record = pipeline.input_type
            if not (isinstance(record, type) and issubclass(record, BaseModel)):
                raise InvalidInputError(
                    f"{_WHERE}.run got a ray.data.Dataset, but the pipeline's input type "
                    f"{getattr(record, '__name__', record)!r} is not a record whose fields can "
                    "be columns; pass an iterable of its items instead"
                )
            return items.map_batches(
                _ToRecords(record), batch_format="pyarrow", batch_size=self.config.batch_size
            )
        values = list(ensure_iterable(items, f"{_WHERE}.run"))
        blocks = max(1, math.ceil(len(values) / self.config.batch_size))
        rows = [{"item": _Item(value)} for value in values]
        context = ray.data.DataContext.get_current()
        fallback = context.enable_fallback_to_arrow_object_ext_type
        context.enable_fallback_to_arrow_object_ext_type = True  # records stay Python objects
        try:
            return ray.data.from_items(rows, override_num_blocks=blocks)
        finally:
            context.enable_fallback_to_arrow_object_ext_type = fallback
