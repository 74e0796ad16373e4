"""RayRunner: a pipeline on Ray Data gives the local run's outputs and trace.

Assembly (``plan``) needs no Ray, so those tests run everywhere; the runs use
the session's local Ray (``local_ray``, 2 CPUs) and skip without the extra.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import torch

from genarch import ConfigError, Document, InvalidInputError, Pipeline, PipelineError
from genarch.data import (
    Chunker,
    ExactDeduplicator,
    NearDeduplicator,
    PiiRedactor,
    QualityFilter,
    TextCleaner,
    python_docs,
)
from genarch.distributed.runner import RayRunner
from ray_faults import kill_me, kills, start_killer


class Uppercase:
    """A per-item stage the runner does not know: it must be declared."""

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        for doc in items:
            yield doc.model_copy(update={"text": doc.text.upper()})


class LengthScorer:
    """A stage that holds a model (a torch module): it goes to an actor pool.

    With a ``killer`` it asks that actor to ``ray.kill`` the actor it runs on,
    on its first batch only (the killer remembers), and waits to be killed.
    """

    def __init__(self, killer: Any = None) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)
        self.killer = killer

    def process(self, items: Iterable[Document]) -> Iterator[Document]:
        if self.killer is not None:
            kill_me(self.killer)
        for doc in items:
            with torch.no_grad():
                score = self.model(torch.tensor([[float(len(doc.text))]])).item()
            yield doc.model_copy(update={"metadata": {**doc.metadata, "score": score}})


def _pipeline(*extra: Any) -> Pipeline:
    return Pipeline(
        [
            TextCleaner(),
            QualityFilter(min_words=150),  # drops some pages, so the counters are not empty
            PiiRedactor(),
            *extra,
            Chunker(max_tokens=128, overlap_tokens=16),
        ]
    )


def _multiset(records: Iterable[Any]) -> collections.Counter[str]:
    return collections.Counter(r.model_dump_json() for r in records)


@pytest.fixture(scope="module")
def ray(local_ray: Any) -> Any:
    """The session's Ray; this module's classes travel to the workers by value."""
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return local_ray


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return python_docs()


# ----------------------------------------------------------------- assembly


def test_plan_puts_per_item_stages_on_tasks_and_a_model_stage_on_actors() -> None:
    plan = RayRunner(placement={"length_scorer": "auto"}).plan(_pipeline(LengthScorer()))
    assert [(s.name, s.placement) for s in plan.stages] == [
        ("text_cleaner", "tasks"),
        ("quality_filter", "tasks"),
        ("pii_redactor", "tasks"),
        ("length_scorer", "actors"),
        ("chunker", "tasks"),
    ]


@pytest.mark.parametrize("dedup", [ExactDeduplicator(), NearDeduplicator()])
def test_plan_refuses_a_stage_that_needs_every_item_naming_it(dedup: Any) -> None:
    pipe = Pipeline([TextCleaner(), ("dedup", dedup), Chunker()])
    with pytest.raises(PipelineError, match=r"stage 'dedup' \(\w+Deduplicator\) cannot run"):
        RayRunner().plan(pipe)
    nested = Pipeline([("prepare", Pipeline([TextCleaner(), ("dedup", dedup)])), Chunker()])
    with pytest.raises(PipelineError, match=r"stage 'prepare' > 'dedup'"):
        RayRunner().plan(nested)
    with pytest.raises(PipelineError, match="must see every document"):
        RayRunner(placement={"dedup": "tasks"}).plan(pipe)  # declaring it does not help


def test_plan_refuses_an_unknown_stage_until_it_is_declared() -> None:
    pipe = Pipeline([TextCleaner(), ("shout", Uppercase())])
    with pytest.raises(PipelineError, match=r"stage 'shout' \(Uppercase\) is not known"):
        RayRunner().plan(pipe)
    assert RayRunner(placement={"shout": "auto"}).plan(pipe).stages[1].placement == "tasks"
    plan = RayRunner(placement={"shout": "actors"}).plan(pipe)
    assert plan.stages[1].placement == "actors"
    assert plan.stages[1].reason == "declared in placement"


def test_bad_settings_name_the_argument() -> None:
    with pytest.raises(ConfigError, match=r"placement names \['nope'\]"):
        RayRunner(placement={"nope": "tasks"}).plan(_pipeline())
    with pytest.raises(ConfigError, match="batch_size"):
        RayRunner(batch_size=0)
    with pytest.raises(ConfigError, match="expected address as a Ray address"):
        RayRunner(address="")
    with pytest.raises(InvalidInputError, match="expected a genarch Pipeline, got list"):
        RayRunner().plan([TextCleaner()])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- runs


def test_outputs_and_trace_equal_the_local_run_on_the_python_docs(
    ray: Any, docs: list[Document]
) -> None:
    pipe = _pipeline()
    local = pipe.run(docs)
    expected = local.collect()
    run = RayRunner(batch_size=16).run(pipe, docs)
    outputs = run.collect()
    assert _multiset(outputs) == _multiset(expected)
    trace, local_trace = run.trace, local.trace
    assert trace.finished
    assert local_trace.stage("quality_filter").items_out < len(docs)  # something was dropped
    for got, want in zip(trace.stages, local_trace.stages, strict=True):
        assert (got.name, got.component, got.items_in, got.items_out, got.counters) == (
            want.name,
            want.component,
            want.items_in,
            want.items_out,
            want.counters,
        )
        assert got.seconds > 0


def test_preserve_order_gives_the_local_order(ray: Any, docs: list[Document]) -> None:
    pipe = _pipeline()
    assert RayRunner(batch_size=8, preserve_order=True).run(pipe, docs).collect() == list(
        pipe.run(docs)
    )


def test_a_dataset_of_document_fields_gives_the_same_outputs(
    ray: Any, docs: list[Document]
) -> None:
    pipe = _pipeline()
    dataset = ray.data.from_items([d.model_dump() for d in docs[:20]])
    got = RayRunner(batch_size=8).run(pipe, dataset).collect()
    assert _multiset(got) == _multiset(pipe.run(docs[:20]))


def test_an_actor_killed_mid_run_is_restarted_and_the_result_is_unchanged(
    ray: Any, docs: list[Document]
) -> None:
    killer = start_killer(ray)
    docs = docs[:24]
    pipe = _pipeline(("score", LengthScorer(killer)))
    runner = RayRunner(
        batch_size=8,
        actor_pool_size=1,
        placement={"score": "auto"},
        max_restarts=2,
        max_task_retries=2,
    )
    run = runner.run(pipe, docs)
    assert run.plan.stages[3].placement == "actors"
    outputs = run.collect()
    assert kills(ray, killer) == 1
    local = _pipeline(("score", LengthScorer())).run(docs)
    assert _multiset(outputs) == _multiset(local)
    # the batch the killed actor was working on is counted once
    assert run.trace.stage("score").items_in == local.trace.stage("score").items_in


def test_a_stage_error_on_a_worker_reaches_the_caller_as_the_genarch_error(ray: Any) -> None:
    run = RayRunner().run(Pipeline([TextCleaner()]), ["not a document"])
    with pytest.raises(InvalidInputError, match="Document"):
        run.collect()
