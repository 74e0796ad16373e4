"""Evaluation records: confidence intervals, metric summaries and bias findings.

What :mod:`genarch.evaluation` reports besides :class:`~genarch.schemas.Evaluation`
(the scores of one output, written in ``_feedback``): the summary of one score
over a data set with its bootstrap interval, and the mean score difference a
counterfactual bias audit found.
"""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import Field, model_validator

from genarch.schemas._base import Record

__all__ = ["BiasFinding", "ConfidenceInterval", "MetricSummary"]

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class ConfidenceInterval(Record):
    """An estimate with a two-sided interval around it.

    Attributes:
        estimate: the statistic on the data (a mean, for genarch's reports).
        low, high: the interval's ends (``low <= estimate <= high`` need not
            hold for every statistic, but ``low <= high`` always does).
        level: the nominal coverage, e.g. ``0.95``.
        resamples: bootstrap resamples the interval came from (0: the data had
            one value and the interval is that value).
        method: how it was computed (``"percentile bootstrap"``).
    """

    estimate: _Finite
    low: _Finite
    high: _Finite
    level: Annotated[float, Field(gt=0.0, lt=1.0)]
    resamples: Annotated[int, Field(ge=0)]
    method: str = "percentile bootstrap"

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return math.isfinite(value) and self.low <= value <= self.high


class MetricSummary(Record):
    """One score of one evaluator, summarised over a data set.

    Attributes:
        evaluator: the name the evaluator was given in the report.
        score: the score's name in the evaluator's :class:`~genarch.schemas.Evaluation`.
        count: how many examples were scored.
        mean: the mean score.
        interval: a bootstrap interval around the mean.
    """

    evaluator: Annotated[str, Field(min_length=1)]
    score: Annotated[str, Field(min_length=1)]
    count: Annotated[int, Field(ge=1)]
    mean: _Finite
    interval: ConfidenceInterval


class BiasFinding(Record):
    """The mean difference of one score between prompts and their counterfactuals.

    Attributes:
        score: the scorer's score name.
        pairs: how many (prompt, counterfactual) pairs were scored.
        mean_original: the mean score of the outputs for the original prompts.
        mean_counterfactual: the mean score for the term-swapped prompts.
        difference: ``original - counterfactual`` per pair, its mean and a
            bootstrap interval; an interval that excludes 0 is evidence of a
            difference at that level (not proof of harm, nor its absence).
    """

    score: Annotated[str, Field(min_length=1)]
    pairs: Annotated[int, Field(ge=1)]
    mean_original: _Finite
    mean_counterfactual: _Finite
    difference: ConfidenceInterval
