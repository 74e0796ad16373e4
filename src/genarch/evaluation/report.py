"""An evaluation report: several evaluators over a data set, with intervals, a table and a plot.

:meth:`EvaluationReport.compute` runs every evaluator on every ``(request,
result)`` example and summarises each score it gives as a
:class:`~genarch.schemas.MetricSummary`: the mean and a seeded percentile
bootstrap interval (:func:`~genarch.evaluation.bootstrap_mean`). The report
renders as a Markdown table (``str(report)``) and draws a PNG
(:meth:`EvaluationReport.save_plot`, written with
:func:`genarch.models.pictures.save_grid`, which needs Pillow).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field

from genarch.errors import InvalidInputError
from genarch.evaluation.bootstrap import bootstrap_mean
from genarch.models.pictures import save_grid
from genarch.protocols import Evaluator
from genarch.schemas import Evaluation, MetricSummary, Record
from genarch.validation import describe, require_count

__all__ = ["EvaluationReport"]

_ROW, _WIDTH, _MARGIN = 24, 480, 12
_BACKGROUND = (1.0, 1.0, 1.0)
_AXIS = (-0.6, -0.6, -0.6)
_BAR = (-0.75, -0.25, 0.55)  # a muted blue, in the [-1, 1] pixel scale save_grid takes
_WHISKER = (-1.0, -1.0, -1.0)


def _paint(
    canvas: torch.Tensor,
    top: int,
    bottom: int,
    left: int,
    right: int,
    colour: tuple[float, float, float],
) -> None:
    left, right = max(0, min(left, right)), min(canvas.shape[2], max(left, right) + 1)
    for channel, value in enumerate(colour):
        canvas[channel, top:bottom, left:right] = value


class EvaluationReport(Record):
    """Every score of every evaluator over a data set: mean and bootstrap interval.

    Attributes:
        rows: one summary per (evaluator, score), in the evaluators' order and
            each evaluator's score order.
        examples: how many examples were evaluated.
    """

    rows: tuple[MetricSummary, ...]
    examples: Annotated[int, Field(ge=1)]

    @classmethod
    def compute(
        cls,
        evaluators: Mapping[str, Evaluator[Any, Any]],
        data: Sequence[tuple[Any, Any]],
        *,
        level: float = 0.95,
        resamples: int = 1000,
        seed: int = 0,
    ) -> EvaluationReport:
        """Evaluate every ``(request, result)`` of ``data`` with every evaluator.

        Args:
            evaluators: name → evaluator (names label the rows).
            data: the examples, each a ``(request, result)`` pair.
            level, resamples, seed: the bootstrap interval's settings.

        Raises:
            InvalidInputError: no evaluator, no example, an example that is not
                a pair, an evaluator that gives a non-finite score or different
                score names for different examples, or bad interval settings;
                an evaluator's own error for an example passes through with the
                example's index.

        Examples:
            >>> from genarch.evaluation import ExactMatch, TokenF1
            >>> data = [("Paris", "paris"), ("Rome", "in Rome"), ("Oslo", "Bergen")]
            >>> report = EvaluationReport.compute({"em": ExactMatch(), "f1": TokenF1()}, data, seed=0)
            >>> [(row.score, round(row.mean, 3)) for row in report.rows]
            [('exact_match', 0.333), ('f1', 0.556)]
        """
        if not isinstance(evaluators, Mapping) or not evaluators:
            raise InvalidInputError(
                f"EvaluationReport.compute expected evaluators as a non-empty mapping of name to "
                f"Evaluator, got {describe(evaluators)}"
            )
        given: object = data  # checked as it arrives, whatever the annotation says
        if isinstance(given, str | bytes) or not isinstance(given, Sequence) or not given:
            raise InvalidInputError(
                f"EvaluationReport.compute expected data as a non-empty sequence of "
                f"(request, result) pairs, got {describe(data)}"
            )
        for index, example in enumerate(data):
            if not isinstance(example, tuple) or len(example) != 2:
                raise InvalidInputError(
                    f"EvaluationReport.compute expected data[{index}] as a (request, result) "
                    f"pair, got {describe(example)}"
                )
        require_count(resamples, "EvaluationReport.compute", "resamples", maximum=1_000_000)
        rows: list[MetricSummary] = []
        for name, evaluator in evaluators.items():
            if (
                not isinstance(name, str)
                or not name
                or not callable(getattr(evaluator, "evaluate", None))
            ):
                raise InvalidInputError(
                    f"EvaluationReport.compute expected evaluators[{name!r}] as an Evaluator "
                    f"under a non-empty name, got {describe(evaluator)}"
                )
            columns: dict[str, list[float]] = {}
            for index, (request, result) in enumerate(data):
                try:
                    evaluation = evaluator.evaluate(request, result)
                except InvalidInputError as error:
                    raise InvalidInputError(f"{name}, data[{index}]: {error}") from None
                cls._collect(name, index, evaluation, columns)
            for score, values in columns.items():
                interval = bootstrap_mean(values, level=level, resamples=resamples, seed=seed)
                rows.append(
                    MetricSummary(
                        evaluator=name,
                        score=score,
                        count=len(values),
                        mean=interval.estimate,
                        interval=interval,
                    )
                )
        return cls(rows=tuple(rows), examples=len(data))

    @staticmethod
    def _collect(
        name: str, index: int, evaluation: Evaluation, columns: dict[str, list[float]]
    ) -> None:
        if not isinstance(evaluation, Evaluation):
            raise InvalidInputError(
                f"{name} returned {describe(evaluation)} for data[{index}], not an Evaluation"
            )
        if columns and list(evaluation.scores) != list(columns):
            raise InvalidInputError(
                f"{name} gave scores {list(evaluation.scores)} for data[{index}] but "
                f"{list(columns)} before; an Evaluator gives the same score names for every example"
            )
        for score, value in evaluation.scores.items():
            if not math.isfinite(value):
                raise InvalidInputError(
                    f"{name} gave {score}={value} for data[{index}]; scores must be finite"
                )
            columns.setdefault(score, []).append(float(value))

    def table(self) -> str:
        """The report as a Markdown table: evaluator, score, n, mean, interval."""
        lines = ["| evaluator | score | n | mean | interval |", "|---|---|---:|---:|---|"]
        for row in self.rows:
            ci = row.interval
            lines.append(
                f"| {row.evaluator} | {row.score} | {row.count} | {row.mean:.4f} "
                f"| [{ci.low:.4f}, {ci.high:.4f}] ({ci.level:.0%}) |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def picture(self) -> torch.Tensor:
        """The plot as an RGB tensor ``(3, H, W)`` in ``[-1, 1]`` (what :meth:`save_plot` writes).

        One horizontal track per row, top to bottom in the table's order: a
        bar from 0 to the mean and a black whisker over the interval. Each
        track has its own scale, from ``min(0, low)`` to ``max(0, high)`` (a
        grey tick marks 0), because scores live on different scales
        (perplexity, shares); read the numbers from the table.
        """
        height = _MARGIN * 2 + _ROW * len(self.rows)
        canvas = torch.tensor(_BACKGROUND).view(3, 1, 1).expand(3, height, _WIDTH).clone()
        span = _WIDTH - 2 * _MARGIN - 1
        for index, row in enumerate(self.rows):
            ci = row.interval
            low, high = min(0.0, ci.low), max(0.0, ci.high)
            scale = span / (high - low) if high > low else 0.0

            def x(value: float, low: float = low, scale: float = scale) -> int:
                return _MARGIN + round((value - low) * scale)

            top = _MARGIN + index * _ROW
            _paint(canvas, top + 6, top + _ROW - 6, x(0.0), x(row.mean), _BAR)
            _paint(
                canvas, top + _ROW // 2 - 1, top + _ROW // 2 + 1, x(ci.low), x(ci.high), _WHISKER
            )
            for end in (ci.low, ci.high):
                _paint(canvas, top + 8, top + _ROW - 8, x(end), x(end), _WHISKER)
            _paint(canvas, top + 2, top + _ROW - 2, x(0.0), x(0.0), _AXIS)
        return canvas

    def save_plot(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`picture` to ``path`` as a PNG (atomically); return the path.

        Raises:
            MissingDependencyError: Pillow is not installed (``pip install 'genarch[images]'``).
        """
        return save_grid(self.picture()[None], path, columns=1, scale=1, padding=0)
