"""Checks for the data layer: :class:`~genarch.protocols.DataProcessor` and :class:`~genarch.protocols.Tokenizer`."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from genarch._typefit import stage_types
from genarch.protocols import DataProcessor, Tokenizer
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    assert_config_roundtrip,
    expect_genarch_error,
    label_of,
    require,
    run_checks,
    saved_and_loaded,
    scrambled_global_rngs,
    supports_config,
    supports_persistence,
)

__all__ = ["check_data_processor", "check_tokenizer", "data_processor_checks", "tokenizer_checks"]


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
        assert_same(
            run_with(saved_and_loaded(processor)), run(items), path="loaded processor output"
        )

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


def tokenizer_checks(
    tokenizer: Tokenizer, texts: Sequence[str], *, label: str | None = None
) -> list[Check]:
    """Checks for a :class:`~genarch.protocols.Tokenizer`.

    Args:
        tokenizer: the implementation under test.
        texts: varied text (non-ASCII, whitespace, long words); the empty
            string is always checked as well.
        label: name shown in reports.
    """
    subject = label_of(tokenizer, label)
    samples = [*texts, ""]

    def round_trips_text() -> None:
        for text in samples:
            decoded = tokenizer.decode(tokenizer.encode(text))
            require(
                decoded == text, f"expected decode(encode(t)) == t for {text!r}, got {decoded!r}"
            )

    def ids_are_in_the_vocabulary() -> None:
        size = tokenizer.vocab_size
        require(
            isinstance(size, int) and size > 0,
            f"expected vocab_size to be a positive int, got {size!r}",
        )
        for text in samples:
            ids = tokenizer.encode(text)
            outside = [i for i in ids if not isinstance(i, int) or not 0 <= i < size]
            require(
                not outside,
                f"{text!r}: expected int ids in range({size}), got {outside[:5]!r}",
            )

    def deterministic() -> None:
        with scrambled_global_rngs():
            first = [tokenizer.encode(text) for text in samples]
        with scrambled_global_rngs():
            second = [tokenizer.encode(text) for text in samples]
        assert_same(second, first, path="second encoding")

    def save_load_roundtrip() -> None:
        loaded = saved_and_loaded(tokenizer)
        require(
            loaded.vocab_size == tokenizer.vocab_size,
            f"expected the loaded vocab_size {tokenizer.vocab_size}, got {loaded.vocab_size}",
        )
        for text in samples:
            assert_same(
                loaded.encode(text), tokenizer.encode(text), path=f"loaded encode({text!r})"
            )

    def config_roundtrip() -> None:
        assert_config_roundtrip(tokenizer)

    checks = [round_trips_text, ids_are_in_the_vocabulary, deterministic]
    if supports_persistence(tokenizer):
        checks.append(save_load_roundtrip)
    if supports_config(tokenizer):
        checks.append(config_roundtrip)
    return [Check("Tokenizer", c.__name__, subject, c) for c in checks]


def check_tokenizer(tokenizer: Tokenizer, texts: Sequence[str], **options: Any) -> list[str]:
    """Run :func:`tokenizer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure.

    Examples:
        >>> from genarch.testing import check_tokenizer
        >>> class Letters:
        ...     vocab_size = 0x110000
        ...     def encode(self, text): return [ord(c) for c in text]
        ...     def decode(self, ids): return "".join(map(chr, ids))
        >>> check_tokenizer(Letters(), ["héllo", "世界"])
        ['round_trips_text', 'ids_are_in_the_vocabulary', 'deterministic']
    """
    return run_checks(tokenizer_checks(tokenizer, texts, **options))
