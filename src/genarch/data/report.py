"""The data report: what a data pipeline did to a corpus, in one record.

Stages report counters under prefixes (see
:class:`~genarch.pipeline.ReportingProcessor`): ``dropped:<reason>``,
``duplicates:<kind>`` and ``pii:<entity type>``. :class:`DataReport` gathers
them from a :class:`~genarch.pipeline.PipelineTrace` together with the counts
in and out, so data lineage is part of every run.
"""

from __future__ import annotations

import collections

from genarch.schemas import PipelineTrace, Record, StageTrace

__all__ = ["DataReport"]


class DataReport(Record):
    """Counts in and out, drops by reason, duplicates and PII found by type."""

    items_in: int
    items_out: int
    stages: tuple[StageTrace, ...]
    dropped: dict[str, int]
    duplicates: dict[str, int]
    pii: dict[str, int]
    seconds: float

    @classmethod
    def from_trace(cls, trace: PipelineTrace) -> DataReport:
        """Summarise a finished (or running) pipeline trace.

        Examples:
            >>> from genarch import Document, Pipeline
            >>> from genarch.data import QualityFilter, TextCleaner
            >>> run = Pipeline([TextCleaner(), QualityFilter()]).run(
            ...     [Document(id="a", text="Enough words to pass the filter here."), Document(id="b", text="no")])
            >>> _ = run.collect()
            >>> DataReport.from_trace(run.trace).dropped
            {'too_short': 1}
        """
        groups: dict[str, collections.Counter[str]] = {
            "dropped": collections.Counter(),
            "duplicates": collections.Counter(),
            "pii": collections.Counter(),
        }
        for stage in trace.stages:
            for key, value in stage.counters.items():
                prefix, _, name = key.partition(":")
                if prefix in groups and name:
                    groups[prefix][name] += value
        return cls(
            items_in=trace.stages[0].items_in if trace.stages else 0,
            items_out=trace.stages[-1].items_out if trace.stages else 0,
            stages=trace.stages,
            dropped=dict(sorted(groups["dropped"].items())),
            duplicates=dict(sorted(groups["duplicates"].items())),
            pii=dict(sorted(groups["pii"].items())),
            seconds=trace.seconds,
        )

    def summary(self) -> str:
        """A few readable lines for a terminal."""

        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

        lines = [
            f"items in {self.items_in}, out {self.items_out} ({self.seconds:.2f} s)",
            f"dropped: {listing(self.dropped)}",
            f"duplicates: {listing(self.duplicates)}",
            f"PII redacted: {listing(self.pii)}",
        ]
        return "\n".join(lines)
