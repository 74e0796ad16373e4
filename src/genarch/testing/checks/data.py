"""Checks for the data-processing layer: :class:`~genarch.protocols.DataProcessor`."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from genarch._typefit import stage_types
from genarch.protocols import DataProcessor
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    assert_config_roundtrip,
    expect_genarch_error,
    label_of,
    require,
    saved_and_loaded,
    run_checks,
    scrambled_global_rngs,
    supports_config,
    supports_persistence,
)

__all__ = ["check_data_processor", "data_processor_checks"]


def data_processor_checks(
    processor: DataProcessor[Any, Any],
    examples: Sequence[Any],
    *,
    invalid_items: Sequence[Any] = (),
    label: str | None = None,
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.DataProcessor`.

    Args:
        processor: the implementation under test.
        examples: valid input items (a few, varied).
        invalid_items: items the processor must reject with a GenarchError.
        label: name shown in reports (default: the class name).
    """
    subject = label_of(processor, label)
    items = list(examples)

    def run(source: Any) -> list[Any]:
        return list(processor.process(source))

    def run_with(other: Any) -> list[Any]:
        return list(other.process(items))

    def is_lazy() -> None:
        pulled = 0

        def source() -> Iterator[Any]:
            nonlocal pulled
            for item in items:
                pulled += 1
                yield item

        outputs = processor.process(source())
        require(
            pulled == 0,
            f"expected process() to consume nothing before its output is iterated, "
            f"it consumed {pulled} item(s)",
        )
        require(
            isinstance(outputs, Iterator),
            f"expected process() to return an iterator, got {type(outputs).__name__}",
        )
        list(outputs)

    def accepts_one_shot_iterators() -> None:
        assert_same(run(iter(items)), run(items), path="process(iter(items)) vs process(list)")

    def deterministic() -> None:
        with scrambled_global_rngs():
            first = run(items)
        with scrambled_global_rngs():
            second = run(items)
        assert_same(second, first, path="second run")

    def no_state_between_calls() -> None:
        first = run(items)
        run(items[::-1])
        run(items)
        assert_same(run(items), first, path="run after other runs")

    def outputs_have_declared_type() -> None:
        _, produces = stage_types(processor)
        if isinstance(produces, type) and produces is not object:
            for index, output in enumerate(run(items)):
                require(
                    isinstance(output, produces),
                    f"output {index}: process() declares {produces.__name__}, "
                    f"got {type(output).__name__}",
                )

    def rejects_non_iterables() -> None:
        expect_genarch_error(lambda: run(42), "process(42)")

    def rejects_wrong_items() -> None:
        expect_genarch_error(lambda: run([object()]), "process([object()])")

    def rejects_invalid_items() -> None:
        for index, bad in enumerate(invalid_items):
            expect_genarch_error(functools.partial(run, [bad]), f"invalid item {index}")

    def config_roundtrip() -> None:
        assert_config_roundtrip(processor)
        rebuilt = type(processor).from_config(processor.config)  # type: ignore[attr-defined]
        assert_same(run_with(rebuilt), run(items), path="output of from_config(config)")

    def save_load_roundtrip() -> None:
        assert_same(run_with(saved_and_loaded(processor)), run(items), path="loaded processor output")

    checks = [
        is_lazy,
        accepts_one_shot_iterators,
        deterministic,
        no_state_between_calls,
        outputs_have_declared_type,
        rejects_non_iterables,
        rejects_wrong_items,
    ]
    if invalid_items:
        checks.append(rejects_invalid_items)
    if supports_config(processor):
        checks.append(config_roundtrip)
    if supports_persistence(processor):
        checks.append(save_load_roundtrip)
    return [Check("DataProcessor", c.__name__, subject, c) for c in checks]


def check_data_processor(
    processor: DataProcessor[Any, Any], examples: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`data_processor_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(data_processor_checks(processor, examples, **options))
