"""The model card every artefact carries: ``README.md`` in the Hugging Face layout.

YAML front matter (``library_name``, ``tags``, ``license``, ``model_name``,
``version``, ``datasets``/``metrics`` when known) followed by the sections a
reader of a model card expects: model details, intended use, architecture and
size, training data (lineage), training procedure, evaluation, limitations and
how to load it. Only what the packager knows is written: a section with
nothing given says so instead of inventing text.

The front matter is written without a YAML library: every scalar is a
JSON-quoted string (valid YAML), every list a flow sequence.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Mapping

import torch
from torch import nn

from genarch._version import __version__
from genarch.data.report import DataReport
from genarch.schemas import Evaluation, PipelineTrace, TrainingReport

__all__ = ["count_parameters", "render_model_card"]

NOT_GIVEN = "_Not documented when this artefact was packaged._"


def count_parameters(component: object) -> int | None:
    """Parameters of ``component`` when it is a ``torch.nn.Module`` or holds some.

    Modules held as attributes (a generator's ``model``, an encoder's network)
    are counted once each, shared parameters once. ``None`` when there are none.

    Examples:
        >>> count_parameters(torch.nn.Linear(3, 2)), count_parameters("text")
        (8, None)
    """
    modules = [component] if isinstance(component, nn.Module) else []
    if not modules:
        try:
            held = list(vars(component).values())
        except TypeError:  # no __dict__
            held = []
        modules = [value for value in held if isinstance(value, nn.Module)]
    parameters = {id(p): p.numel() for module in modules for p in module.parameters()}
    return sum(parameters.values()) if parameters else None


def _yaml(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json.dumps(str(item), ensure_ascii=False) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _table(rows: Mapping[str, object], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in rows.items()]
    return "\n".join(lines)


def _lineage(data: PipelineTrace | DataReport | None) -> str:
    if data is None:
        return NOT_GIVEN
    report = DataReport.from_trace(data) if isinstance(data, PipelineTrace) else data
    stages = _table(
        {f"{s.name} ({s.component})": f"{s.items_in} → {s.items_out}" for s in report.stages},
        ("stage", "items in → out"),
    )
    parts = [
        f"The training data went through a genarch pipeline of {len(report.stages)} "
        f"stage(s): {report.items_in} items in, {report.items_out} out.",
        "",
        stages,
    ]
    for title, counts in (
        ("Dropped, by reason", report.dropped),
        ("Duplicates removed, by kind", report.duplicates),
        ("PII found, by type", report.pii),
    ):
        if counts:
            parts += ["", f"{title}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + "."]
    return "\n".join(parts)


def _training(report: TrainingReport | None) -> str:
    if report is None:
        return NOT_GIVEN
    rows: dict[str, object] = {
        "steps": report.steps,
        "final training loss": f"{report.train_loss[-1]:.4g}" if report.train_loss else "—",
        "stopped because": report.stopped_because,
        "wall time (s)": f"{report.wall_seconds:.1f}",
        "items per second": f"{report.items_per_second:.1f}",
    }
    if report.eval_loss:
        step, loss = report.eval_loss[-1]
        rows["last evaluation loss"] = f"{loss:.4g} (step {step})"
    if report.best_step is not None:
        rows["best step"] = report.best_step
    if report.skipped_steps:
        rows["skipped steps"] = report.skipped_steps
    return _table(rows, ("training", "value"))


def _evaluation(figures: Mapping[str, float] | Evaluation | None) -> str:
    scores = figures.scores if isinstance(figures, Evaluation) else figures
    if not scores:
        return NOT_GIVEN
    return _table({k: f"{v:.6g}" for k, v in scores.items()}, ("metric", "value"))


def render_model_card(
    *,
    name: str,
    version: str,
    component: str,
    component_class: str,
    parameters: int | None,
    created_at: _dt.datetime,
    intended_use: str | None = None,
    limitations: str | None = None,
    lineage: PipelineTrace | DataReport | None = None,
    training: TrainingReport | None = None,
    evaluation: Mapping[str, float] | Evaluation | None = None,
    license: str | None = None,
    datasets: tuple[str, ...] = (),
) -> str:
    """The text of an artefact's ``README.md`` (see the module docstring).

    Examples:
        >>> import datetime
        >>> card = render_model_card(name="tiny", version="1", component="genarch.VAE",
        ...     component_class="VAE", parameters=1234, created_at=datetime.datetime(2025, 1, 1),
        ...     evaluation={"fid": 12.5})
        >>> card.splitlines()[0], "| fid | 12.5 |" in card
        ('---', True)
    """
    scores = evaluation.scores if isinstance(evaluation, Evaluation) else evaluation
    front = {
        "library_name": "genarch",
        "tags": ["genarch", component_class],
        "model_name": name,
        "version": version,
    }
    if license:
        front["license"] = license
    if datasets:
        front["datasets"] = list(datasets)
    if scores:
        front["metrics"] = list(scores)
    size = f"{parameters:,} parameters" if parameters is not None else "not a torch module"
    sections = [
        "---",
        *(f"{key}: {_yaml(value)}" for key, value in front.items()),
        "---",
        "",
        f"# {name} {version}",
        "",
        "## Model details",
        "",
        _table(
            {
                "component": f"`{component}` (`{component_class}`)",
                "packaged": created_at.isoformat(),
                "genarch": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            ("", ""),
        ),
        "",
        "## Intended use",
        "",
        intended_use or NOT_GIVEN,
        "",
        "## Architecture and size",
        "",
        f"`{component_class}`, registered as `{component}`: {size}. "
        "The configuration is in `component/` and in `manifest.json`.",
        "",
        "## Training data",
        "",
        _lineage(lineage),
        "",
        "## Training procedure",
        "",
        _training(training),
        "",
        "## Evaluation",
        "",
        _evaluation(evaluation),
        "",
        "## Limitations",
        "",
        limitations or NOT_GIVEN,
        "",
        "## How to load",
        "",
        "```python",
        "from genarch.deploy import LocalDeployer",
        "",
        'endpoint = LocalDeployer().deploy("path/to/this/directory")  # verifies every file first',
        "```",
        "",
        "Every file is listed with its size and SHA-256 in `manifest.json` and in "
        "`SHA256SUMS` (`sha256sum -c SHA256SUMS` checks it by hand).",
        "",
    ]
    return "\n".join(sections)
