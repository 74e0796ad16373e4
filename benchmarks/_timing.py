"""Timing helpers shared by the benchmark scripts (peers run alternately, in one process)."""

from __future__ import annotations

import importlib.metadata
import statistics
import time
from collections.abc import Callable

__all__ = ["alternate", "summary", "version"]


def version(package: str) -> str:
    """The installed version of ``package``, or ``"not installed"``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def alternate(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, alternating between them (after one warm-up each)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times
