"""A small, thread-safe metrics registry: counters, gauges and histograms.

:class:`MetricsRegistry` holds named metrics with labels. ``snapshot()``
returns plain dicts (for tests, logs, a JSON health page) and
``render_prometheus()`` the Prometheus text exposition format (version
0.0.4: ``# HELP`` / ``# TYPE`` lines, then one ``name{labels} value`` line
per series; a histogram as cumulative ``_bucket{le=...}`` series plus
``_sum`` and ``_count``). No dependency on ``prometheus-client``.

Examples:
    >>> metrics = MetricsRegistry()
    >>> served = metrics.counter("genarch_requests_total", "Requests answered.")
    >>> served.inc(service="generate", outcome="ok")
    >>> print(metrics.render_prometheus().strip())
    # HELP genarch_requests_total Requests answered.
    # TYPE genarch_requests_total counter
    genarch_requests_total{outcome="ok",service="generate"} 1
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Sequence
from typing import Any

from genarch.errors import InvalidInputError

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsRegistry",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Default latency histogram buckets, in seconds."""
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Default batch-size histogram buckets."""

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
Labels = tuple[tuple[str, str], ...]


def _labels(values: dict[str, object]) -> Labels:
    for name in values:
        if not _LABEL.match(name) or name == "le":
            raise InvalidInputError(
                f"metric label names match [a-zA-Z_][a-zA-Z0-9_]*, got {name!r}"
            )
    return tuple(sorted((name, str(value)) for name, value in values.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, labels: Labels) -> str:
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return f"{name}{{{inner}}}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def lines(self) -> list[str]:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def snapshot(self) -> Any:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


class Counter(_Metric):
    """A value per label set that only goes up."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: object) -> None:
        """Add ``amount`` (>= 0) to the series of ``labels``."""
        if not amount >= 0:
            raise InvalidInputError(f"a counter only goes up; got inc({amount!r})")
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: object) -> float:
        """The current value of the series of ``labels`` (0 if never incremented)."""
        with self._lock:
            return self._values.get(_labels(labels), 0)

    def total(self) -> float:
        """The sum over every label set."""
        with self._lock:
            return sum(self._values.values())

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{_series(self.name, key)} {_number(value)}" for key, value in items]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {_series("", key) or "": value for key, value in sorted(self._values.items())}


class Gauge(Counter):
    """A value per label set that goes up and down (queue depth, busy slots)."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        """Set the series of ``labels`` to ``value``."""
        key = _labels(labels)
        with self._lock:
            self._values[key] = value

    def inc(self, amount: float = 1, **labels: object) -> None:
        """Add ``amount`` (may be negative) to the series of ``labels``."""
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or len(set(bounds)) != len(bounds):
            raise InvalidInputError(f"histogram buckets must be distinct numbers, got {buckets!r}")
        self.buckets = tuple(bounds)
        # per label set: counts per bucket (non-cumulative; the last is +Inf), sum
        self._data: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: object) -> None:
        """Count one observation of ``value`` in the series of ``labels``."""
        key = _labels(labels)
        index = bisect.bisect_left(self.buckets, value)  # the first bound >= value
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[index] += 1
            total[0] += value

    def count(self, **labels: object) -> int:
        """How many observations the series of ``labels`` holds."""
        with self._lock:
            data = self._data.get(_labels(labels))
            return sum(data[0]) if data else 0

    def observations(self) -> dict[Labels, dict[str, Any]]:
        """Per label set: ``{"buckets": {bound: cumulative count}, "sum": s, "count": n}``."""
        with self._lock:
            items = [(key, list(c), s[0]) for key, (c, s) in sorted(self._data.items())]
        result = {}
        for key, counts, total in items:
            cumulative, running = {}, 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                cumulative[_number(bound)] = running
            result[key] = {"buckets": cumulative, "sum": total, "count": running}
        return result

    def lines(self) -> list[str]:
        lines = []
        for key, data in self.observations().items():
            for bound, count in data["buckets"].items():
                lines.append(f"{_series(self.name + '_bucket', (*key, ('le', bound)))} {count}")
            lines.append(f"{_series(self.name + '_sum', key)} {_number(data['sum'])}")
            lines.append(f"{_series(self.name + '_count', key)} {data['count']}")
        return lines

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {_series("", key): data for key, data in self.observations().items()}


class MetricsRegistry:
    """Named metrics, created once and shared by the services that report to them.

    Asking twice for the same name returns the same metric; asking for it as
    another kind raises :class:`~genarch.errors.InvalidInputError`.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _get(self, cls: type[_Metric], name: str, help_text: str, *args: Any) -> Any:
        if not _NAME.match(name):
            raise InvalidInputError(f"metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, got {name!r}")
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = cls(name, help_text, *args)
            elif type(metric) is not cls:
                raise InvalidInputError(
                    f"metric {name!r} is a {metric.kind}, not a {cls.kind}; pick another name"
                )
            return metric

    def counter(self, name: str, help_text: str) -> Counter:
        """The counter called ``name`` (created on first use)."""
        counter: Counter = self._get(Counter, name, help_text)
        return counter

    def gauge(self, name: str, help_text: str) -> Gauge:
        """The gauge called ``name`` (created on first use)."""
        gauge: Gauge = self._get(Gauge, name, help_text)
        return gauge

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        """The histogram called ``name`` (created on first use with ``buckets``)."""
        histogram: Histogram = self._get(Histogram, name, help_text, buckets)
        return histogram

    def snapshot(self) -> dict[str, Any]:
        """Every metric as plain data: ``{name: {"type", "help", "values"}}``.

        ``values`` maps each label set, written ``{key="value",...}`` (``""``
        for none), to a number, or for a histogram to ``{"buckets", "sum",
        "count"}`` with cumulative bucket counts keyed by their upper bound.
        """
        with self._lock:
            metrics = sorted(self._metrics.items())
        return {
            name: {"type": metric.kind, "help": metric.help, "values": metric.snapshot()}
            for name, metric in metrics
        }

    def render_prometheus(self) -> str:
        """The Prometheus text exposition format (0.0.4), one metric family after another."""
        with self._lock:
            metrics = sorted(self._metrics.items())
        lines = []
        for name, metric in metrics:
            help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {metric.kind}"]
            lines += metric.lines()
        return "\n".join(lines) + "\n" if lines else ""
