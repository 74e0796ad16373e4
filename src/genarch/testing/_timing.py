"""Growth of running time with input size, measured so that a busy machine cannot fake it."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from genarch.errors import InvalidInputError

__all__ = ["time_growth"]


def time_growth(
    small: Callable[[], object], large: Callable[[], object], repeats: int = 7
) -> float:
    """Time of ``large()`` over time of ``small()``: the fastest of interleaved runs of each.

    Use it to check that a text path is linear: build an adversarial input of
    size n for ``small`` and of size 4n for ``large``; linear work gives a ratio
    near 4, quadratic work 16. A ratio, never an absolute time, so a slow
    machine cannot fail it; interleaving the runs and keeping each one's minimum
    (with the garbage collector paused) keeps bursts of other load out of it.

    Raises:
        InvalidInputError: ``repeats`` is not a positive int.

    Examples:
        >>> ratio = time_growth(lambda: sorted(range(20_000)), lambda: sorted(range(80_000)))
        >>> 2 < ratio < 8
        True
    """
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise InvalidInputError(f"time_growth expected repeats >= 1, got {repeats!r}")
    small(), large()  # warm caches and lazy imports
    best = [float("inf"), float("inf")]
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for which, work in enumerate((small, large)):
                start = time.perf_counter()
                work()
                best[which] = min(best[which], time.perf_counter() - start)
    finally:
        if collecting:
            gc.enable()
    return best[1] / max(best[0], 1e-9)
