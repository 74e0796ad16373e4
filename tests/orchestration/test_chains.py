"""Chains: explicit steps, checked composition, traced calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch.data.byte_tokenizer import ByteTokenizer
from genarch.errors import InvalidInputError, NotFoundError, PipelineError, PipelineTypeError
from genarch.orchestration.chains import (
    Branch,
    Chain,
    FunctionStep,
    MapOverBatch,
    Retry,
    Step,
    run_chain,
    step_types,
)
from genarch.orchestration.tracing import Trace, Tracer


def shout(text: str) -> str:
    return text.upper()


def length(text: str) -> int:
    return len(text)


def double(number: int) -> int:
    return number * 2


SHOUT = FunctionStep("shout", shout)
LENGTH = FunctionStep("length", length)
DOUBLE = FunctionStep("double", double)


class Flaky:
    """A step that fails ``failures`` times, then echoes its input."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def run(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise TimeoutError(f"attempt {self.calls} timed out")
        return value


# ------------------------------------------------------------------ composition


def test_a_sequence_feeds_each_output_to_the_next_step() -> None:
    assert Chain("s", [SHOUT, LENGTH, DOUBLE]).run("abc") == 6


def test_a_user_object_with_name_and_run_is_a_step() -> None:
    flaky = Flaky(0)
    assert isinstance(flaky, Step)
    assert Chain("s", [flaky, SHOUT]).run("a") == "A"


def test_types_that_do_not_fit_are_refused_when_the_sequence_is_built() -> None:
    with pytest.raises(
        PipelineTypeError, match="'length' outputs int, but step 1 'shout' expects str"
    ):
        Chain("s", [LENGTH, SHOUT])


def test_composites_declare_their_types() -> None:
    assert step_types(Chain("s", [SHOUT, LENGTH])) == (str, int)
    _batch_in, batch_out = step_types(MapOverBatch("m", LENGTH))
    assert batch_out == list[int]
    with pytest.raises(PipelineTypeError):
        Chain("s", [MapOverBatch("m", LENGTH), SHOUT])


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        (shout, "FunctionStep"),
        (lambda text: text, "FunctionStep"),
        ({"name": "x", "run": shout}, "mapping"),
        (3, "not a step"),
    ],
)
def test_plain_functions_lambdas_and_dicts_are_not_coerced(bad: object, hint: str) -> None:
    with pytest.raises(InvalidInputError, match=hint):
        Chain("s", [bad])  # type: ignore[list-item]


def test_steps_need_names() -> None:
    with pytest.raises(InvalidInputError, match="name"):
        FunctionStep("", shout)
    with pytest.raises(InvalidInputError):
        Chain("s", [])


@given(st.lists(st.text(max_size=5), max_size=6))
def test_map_over_batch_equals_running_each_item(items: list[str]) -> None:
    assert MapOverBatch("m", SHOUT).run(items) == [shout(item) for item in items]


def test_map_over_batch_refuses_a_single_string() -> None:
    with pytest.raises(InvalidInputError, match="list or tuple"):
        MapOverBatch("m", SHOUT).run("abc")


def test_branch_runs_the_chosen_step_and_records_it() -> None:
    branch = Branch("b", lambda text: len(text) > 3, SHOUT, FunctionStep("keep", str.lower))
    assert branch.run("long text") == "LONG TEXT"
    assert branch.run("AB") == "ab"
    run = run_chain(branch, "AB")
    assert run.trace.spans[0].attributes["branch"] == "if_false"


def test_branch_conditions_must_return_bools() -> None:
    with pytest.raises(InvalidInputError, match="not a bool"):
        Branch("b", len, SHOUT, SHOUT).run("abc")


def test_retry_tries_again_then_succeeds() -> None:
    flaky = Flaky(2)
    run = run_chain(Retry("r", flaky, attempts=3, retry_on=(TimeoutError,)), "ok")
    assert run.output == "ok"
    assert flaky.calls == 3
    attempts = run.trace.children(0)
    assert [span.status for span in attempts] == ["error", "error", "ok"]
    assert run.trace.spans[0].attributes["attempt"] == 3


def test_retry_falls_back_after_the_last_attempt() -> None:
    run = run_chain(
        Retry("r", Flaky(5), attempts=2, retry_on=(TimeoutError,), fallback=SHOUT), "ok"
    )
    assert run.output == "OK"
    assert run.trace.spans[0].attributes["fallback"] is True


def test_retry_without_fallback_raises_a_pipeline_error() -> None:
    with pytest.raises(PipelineError, match="all 2 attempt"):
        Retry("r", Flaky(5), attempts=2, retry_on=(TimeoutError,)).run("ok")


def test_retry_does_not_swallow_other_errors() -> None:
    flaky = Flaky(5)
    with pytest.raises(TimeoutError):
        Retry("r", flaky, attempts=3, retry_on=(KeyError,)).run("ok")
    assert flaky.calls == 1


def test_retry_can_reject_outputs() -> None:
    outputs = iter(["", "", "fine"])
    step = FunctionStep("sometimes-empty", lambda _: next(outputs))
    assert Retry("r", step, attempts=3, accept=lambda text: bool(text)).run("x") == "fine"


def test_retry_arguments_are_validated() -> None:
    with pytest.raises(InvalidInputError):
        Retry("r", SHOUT, attempts=0)
    with pytest.raises(InvalidInputError):
        Retry("r", SHOUT, retry_on=(int,))  # type: ignore[arg-type]


# ------------------------------------------------------------------ traces


def test_every_call_is_a_span_nested_like_the_chain() -> None:
    chain = Chain("outer", [MapOverBatch("each", SHOUT), FunctionStep("count", len)])
    run = run_chain(chain, ["a", "bc"])
    assert run.output == 2
    names = [(span.name, span.parent_id) for span in run.trace.spans]
    assert names == [("outer", None), ("each", 0), ("shout", 1), ("shout", 1), ("count", 0)]
    shouted = run.trace.find("shout")
    assert [(s.input, s.output) for s in shouted] == [("a", "A"), ("bc", "BC")]
    assert all(span.latency_seconds >= 0 and span.status == "ok" for span in run.trace.spans)


def test_spans_count_tokens_when_a_tokenizer_is_given() -> None:
    run = run_chain(Chain("s", [SHOUT]), "héllo", tokenizer=ByteTokenizer())
    span = run.trace.find("shout")[0]
    assert (span.input_tokens, span.output_tokens) == (6, 6)
    assert run_chain(SHOUT, "x").trace.spans[0].input_tokens is None


def test_a_failing_step_is_recorded_as_an_error() -> None:
    tracer = Tracer()
    from genarch.orchestration.chains import call_step

    with pytest.raises(TimeoutError):
        call_step(Flaky(1), "x", tracer)
    [span] = tracer.trace().spans
    assert span.status == "error"
    assert "timed out" in (span.error or "")


def test_trace_round_trips_through_jsonl(tmp_path: Path) -> None:
    run = run_chain(Chain("s", [SHOUT, LENGTH]), "abc")
    path = tmp_path / "trace.jsonl"
    run.trace.write_jsonl(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["name"] for line in lines)
    assert Trace.read_jsonl(path) == run.trace


def test_reading_bad_traces_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        Trace.read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(InvalidInputError, match="line 1"):
        Trace.from_jsonl('{"id": "x"}\n')


def test_the_old_name_sequence_still_works_with_a_deprecation_warning() -> None:
    import genarch.orchestration
    import genarch.orchestration.chains

    for module in (genarch.orchestration, genarch.orchestration.chains):
        with pytest.warns(DeprecationWarning, match="use genarch.orchestration.chains.Chain"):
            assert module.Sequence is Chain
