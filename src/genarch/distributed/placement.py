"""Which stages of a pipeline can run on Ray, and where: the assembly step of a Ray run.

:func:`plan_pipeline` places every stage of a :class:`~genarch.pipeline.Pipeline`
on Ray tasks or actors, or refuses the pipeline naming the stage that cannot be
split into batches. It needs no Ray; :class:`~genarch.distributed.runner.RayRunner`
calls it before submitting any work. The rules are in the runner's module
docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch

from genarch.data.chunking import Chunker
from genarch.data.dedup import ExactDeduplicator, NearDeduplicator
from genarch.data.html import HtmlToText
from genarch.data.images import ImageNormalizer
from genarch.data.pii_redaction import PiiRedactor
from genarch.data.quality import QualityFilter
from genarch.data.text import TextCleaner
from genarch.data.tokenize_stage import Tokenize
from genarch.errors import ConfigError, InvalidInputError, PipelineError
from genarch.pipeline import Pipeline
from genarch.validation import describe

__all__ = [
    "PER_ITEM_STAGES",
    "Placement",
    "PlacementSetting",
    "RayPlan",
    "StagePlan",
    "plan_pipeline",
]

Placement = Literal["tasks", "actors"]
"""Where a stage runs: stateless Ray ``"tasks"``, or a pool of ``"actors"`` that keep it loaded."""

PlacementSetting = Literal["auto", "tasks", "actors"]
"""A stage declared as working one item at a time; ``"auto"`` places it by the model rule."""

PER_ITEM_STAGES: tuple[type[Any], ...] = (
    TextCleaner,
    HtmlToText,
    QualityFilter,
    PiiRedactor,
    Chunker,
    Tokenize,
    ImageNormalizer,
)
"""Built-in stages whose output for a batch is the concatenation of their outputs per item."""

# Built-in stages that need every item, and what to do instead.
_NEEDS_ALL_ITEMS: dict[type[Any], str] = {
    ExactDeduplicator: "keeps the first copy of each text, so it must see every document",
    NearDeduplicator: "keeps the first of each group of near-duplicates, so it must see "
    "every document",
}


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """Where one stage of a pipeline runs on Ray, and why.

    Attributes:
        name: the stage's name in the pipeline.
        component: its class name (as in the trace).
        placement: ``"tasks"`` or ``"actors"``.
        reason: why this placement (``"holds a model"``, ``"declared"``, ...).
    """

    name: str
    component: str
    placement: Placement
    reason: str


@dataclasses.dataclass(frozen=True)
class RayPlan:
    """A pipeline checked for Ray: every stage placed, none that needs all items.

    Attributes:
        pipeline: the pipeline it places.
        stages: one :class:`StagePlan` per stage, in order.
    """

    pipeline: Pipeline
    stages: tuple[StagePlan, ...]

    def summary(self) -> str:
        """One line per stage: name, component, placement and reason."""
        return "\n".join(
            f"{s.name:<16} {s.component:<20} {s.placement:<7} {s.reason}" for s in self.stages
        )


def _holds_model(processor: object) -> bool:
    """The processor (or a stage of a nested pipeline) is or keeps a ``torch.nn.Module``."""
    if isinstance(processor, Pipeline):
        return any(_holds_model(inner) for _, inner in processor.steps)
    if isinstance(processor, torch.nn.Module):
        return True
    attributes = getattr(processor, "__dict__", {})
    return any(isinstance(value, torch.nn.Module) for value in attributes.values())


def _unknown(name: str, processor: object, path: str) -> list[str]:
    """The stages (nested ones included) not known to work one item at a time."""
    if isinstance(processor, Pipeline):
        return [
            stage
            for inner_name, inner in processor.steps
            for stage in _unknown(inner_name, inner, f"{path}{name!r} > ")
        ]
    if isinstance(processor, PER_ITEM_STAGES):
        return []
    return [f"{path}{name!r} ({type(processor).__name__})"]


def _refusal(name: str, processor: object, path: str) -> str | None:
    """Why ``processor`` cannot be split into batches, or ``None`` when it can."""
    kind = type(processor)
    if isinstance(processor, Pipeline):
        for inner_name, inner in processor.steps:
            problem = _refusal(inner_name, inner, f"{path}{name!r} > ")
            if problem is not None:
                return problem
        return None
    for needs_all, why in _NEEDS_ALL_ITEMS.items():
        if isinstance(processor, needs_all):
            return (
                f"stage {path}{name!r} ({kind.__name__}) cannot run on Ray one batch at a time: "
                f"it {why}. Run the pipeline up to it on Ray with preserve_order=True, apply "
                "it on the driver, and run the rest on Ray; or remove duplicates on the "
                "cluster first (docs: concepts/scaling-out.md, 'Deduplication at scale')"
            )
    return None


def _place(name: str, processor: object, declared: PlacementSetting | None) -> StagePlan:
    """The placement of one top-level stage, or PipelineError naming it."""
    component = type(processor).__name__
    problem = _refusal(name, processor, "")
    if problem is not None:
        raise PipelineError(problem)
    unknown = _unknown(name, processor, "")
    if declared == "tasks" or declared == "actors":  # (not "in": mypy 1.x does not narrow it)
        return StagePlan(name, component, declared, "declared in placement")
    if unknown and declared is None:
        raise PipelineError(
            f"stage {name!r} ({component}) is not known to work one item at a time, so "
            f"RayRunner cannot split its input into batches (unknown: {', '.join(unknown)}). "
            "If its output for a batch is the concatenation of its outputs for each item "
            f"(no state across items), declare it: RayRunner(placement={{{name!r}: 'auto'}}) "
            "(on actors when it holds a torch model, else on tasks), or choose 'tasks' or 'actors'"
        )
    why = "declared in placement" if unknown else "works one item at a time"
    if _holds_model(processor):
        return StagePlan(name, component, "actors", f"{why}; holds a model (torch.nn.Module)")
    return StagePlan(name, component, "tasks", why)


def plan_pipeline(
    pipeline: Pipeline, placement: Mapping[str, PlacementSetting], where: str = "RayRunner"
) -> RayPlan:
    """Place every stage of ``pipeline`` on Ray, or refuse naming the stage.

    Args:
        pipeline: the pipeline to place.
        placement: declared stages by name (see :class:`~genarch.distributed.runner.RayRunnerConfig`).
        where: the caller, for messages.

    Raises:
        InvalidInputError: ``pipeline`` is not a Pipeline.
        ConfigError: ``placement`` names a stage the pipeline does not have.
        PipelineError: a stage needs every item (e.g. deduplication), or is
            not known to work one item at a time and was not declared.
    """
    if not isinstance(pipeline, Pipeline):
        raise InvalidInputError(
            f"{where}.plan expected a genarch Pipeline, got {describe(pipeline)}"
        )
    unknown = sorted(set(placement) - set(pipeline.names))
    if unknown:
        raise ConfigError(
            f"{where} placement names {unknown}, which the pipeline does not have; "
            f"its stages are {list(pipeline.names)}"
        )
    stages = tuple(
        _place(name, processor, placement.get(name)) for name, processor in pipeline.steps
    )
    return RayPlan(pipeline=pipeline, stages=stages)
