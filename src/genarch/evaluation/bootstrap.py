"""Seeded bootstrap confidence intervals for a mean.

The percentile bootstrap (Efron & Tibshirani, 1993, ch. 13): draw
``resamples`` samples of the same size with replacement, take each one's mean,
and report the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those
means (NumPy's default linear interpolation). The draws come from
``numpy.random.Generator(PCG64(seed))``, so the same values, level, resamples
and seed always give the same interval. Should the quantiles miss the mean
(possible for very skewed data), the interval is widened to include it; values
that are all equal give that value as a zero-width interval with 0 resamples.

Limits: with few values (say under 20) the percentile interval is too narrow;
it assumes the values are independent draws (paired differences are — pass
the differences, not the two columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from genarch.errors import InvalidInputError
from genarch.schemas import ConfidenceInterval
from genarch.validation import describe, require_count

__all__ = ["bootstrap_mean"]


def bootstrap_mean(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 1000, seed: int = 0
) -> ConfidenceInterval:
    """The mean of ``values`` with a seeded percentile-bootstrap interval.

    Args:
        values: finite numbers (at least one).
        level: the interval's nominal coverage, in ``(0, 1)``.
        resamples: how many bootstrap samples (1 to 1,000,000).
        seed: the seed of the resampling.

    Raises:
        InvalidInputError: no values, a non-finite value, or a level or
            resample count out of range (naming the argument).

    Examples:
        >>> interval = bootstrap_mean([1.0, 2.0, 3.0, 4.0], seed=0)
        >>> interval.estimate, interval.low <= 2.5 <= interval.high
        (2.5, True)
        >>> bootstrap_mean([1.0, 2.0, 3.0, 4.0], seed=0) == interval
        True
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise InvalidInputError(
            f"bootstrap_mean expected values as a non-empty sequence of numbers, got {describe(values)}"
        )
    for index, value in enumerate(values):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInputError(
                f"bootstrap_mean expected finite numbers, but values[{index}] is {describe(value)}"
            )
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InvalidInputError(f"bootstrap_mean expected level in (0, 1), got {describe(level)}")
    resamples = require_count(resamples, "bootstrap_mean", "resamples", maximum=1_000_000)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidInputError(
            f"bootstrap_mean expected seed as an int >= 0, got {describe(seed)}"
        )
    data = np.asarray(values, dtype=np.float64)
    estimate = float(data.mean())
    if len(data) == 1 or bool((data == data[0]).all()):
        return ConfidenceInterval(
            estimate=estimate, low=estimate, high=estimate, level=level, resamples=0
        )
    generator = np.random.Generator(np.random.PCG64(seed))
    means = np.empty(resamples, dtype=np.float64)
    # draw in blocks so memory stays bounded (rows x values floats at a time)
    block = max(1, min(resamples, 4_000_000 // len(data)))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        picks = generator.integers(0, len(data), size=(stop - start, len(data)))
        means[start:stop] = data[picks].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return ConfidenceInterval(
        estimate=estimate,
        low=min(float(low), estimate),
        high=max(float(high), estimate),
        level=level,
        resamples=resamples,
    )
