"""Checks for evaluators: :class:`~genarch.protocols.Evaluator`.

What every evaluator promises (the protocol's docstring): ``evaluate(request,
result)`` returns an :class:`~genarch.schemas.Evaluation` of finite scores;
the same inputs always give the same scores, whatever the global random state
and whatever was evaluated before; every example gets the same score names
(so reports can aggregate them); input it cannot score raises a
:class:`~genarch.errors.GenarchError`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from genarch.protocols import Evaluator
from genarch.schemas import Evaluation
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

__all__ = ["check_evaluator", "evaluator_checks"]


def evaluator_checks(
    evaluator: Evaluator[Any, Any],
    examples: Sequence[tuple[Any, Any]],
    *,
    invalid_examples: Sequence[tuple[Any, Any]] = (),
    label: str | None = None,
) -> list[Check]:
    """Checks for an :class:`~genarch.protocols.Evaluator` over ``(request, result)`` examples.

    Args:
        evaluator: the evaluator under test.
        examples: at least two valid ``(request, result)`` pairs, ideally
            scoring differently.
        invalid_examples: pairs the evaluator must refuse with a GenarchError
            (``(first request, object())`` is always tried too).
        label: the subject shown in failures (default: the class name).
    """
    subject = label_of(evaluator, label)
    pairs = list(examples)

    def returns_finite_scores() -> None:
        require(pairs, "expected at least one example to evaluate")
        for index, (request, result) in enumerate(pairs):
            evaluation = evaluator.evaluate(request, result)
            require(
                isinstance(evaluation, Evaluation),
                f"example {index}: expected an Evaluation, got {type(evaluation).__name__}",
            )
            require(evaluation.scores, f"example {index}: expected at least one score, got none")
            for name, value in evaluation.scores.items():
                require(
                    isinstance(value, float) and math.isfinite(value),
                    f"example {index}: expected score {name!r} to be a finite float, got {value!r}",
                )

    def same_score_names() -> None:
        names = [list(evaluator.evaluate(r, o).scores) for r, o in pairs]
        for index, found in enumerate(names):
            require(
                found == names[0],
                f"example {index}: expected the score names {names[0]} of example 0, got {found}",
            )

    def deterministic() -> None:
        with scrambled_global_rngs():
            first = [evaluator.evaluate(r, o) for r, o in pairs]
        with scrambled_global_rngs():
            second = [evaluator.evaluate(r, o) for r, o in pairs]
        assert_same(second, first, path="second evaluation")

    def no_state_between_calls() -> None:
        forward = [evaluator.evaluate(r, o) for r, o in pairs]
        backward = [evaluator.evaluate(r, o) for r, o in reversed(pairs)][::-1]
        alone = [evaluator.evaluate(*pairs[0])]
        assert_same(backward, forward, path="evaluated in reverse order")
        assert_same(alone[0], forward[0], path="example 0 evaluated again last")

    def rejects_invalid_input() -> None:
        request = pairs[0][0]
        expect_genarch_error(
            lambda: evaluator.evaluate(request, object()), "evaluate(request, object())"
        )
        for index, (bad_request, bad_result) in enumerate(invalid_examples):
            expect_genarch_error(
                functools.partial(evaluator.evaluate, bad_request, bad_result),
                f"invalid example {index}",
            )

    def save_load_roundtrip() -> None:
        loaded = saved_and_loaded(evaluator)
        assert_same(
            [loaded.evaluate(r, o) for r, o in pairs],
            [evaluator.evaluate(r, o) for r, o in pairs],
            path="loaded",
        )

    def config_roundtrip() -> None:
        assert_config_roundtrip(evaluator)
        rebuilt = type(evaluator).from_config(evaluator.config)  # type: ignore[attr-defined]
        assert_same(
            [rebuilt.evaluate(r, o) for r, o in pairs],
            [evaluator.evaluate(r, o) for r, o in pairs],
            path="from_config(config).evaluate",
        )

    checks = [
        returns_finite_scores,
        same_score_names,
        deterministic,
        no_state_between_calls,
        rejects_invalid_input,
    ]
    if supports_persistence(evaluator):
        checks.append(save_load_roundtrip)
    if supports_config(evaluator):
        checks.append(config_roundtrip)
    return [Check("Evaluator", c.__name__, subject, c) for c in checks]


def check_evaluator(
    evaluator: Evaluator[Any, Any], examples: Sequence[tuple[Any, Any]], **options: Any
) -> list[str]:
    """Run :func:`evaluator_checks`; raise :class:`~genarch.errors.ConformanceError` on failure.

    Examples:
        >>> from genarch.evaluation import TokenF1
        >>> check_evaluator(TokenF1(), [("Paris", "paris"), ("Rome", "in Rome")])[:2]
        ['returns_finite_scores', 'same_score_names']
    """
    return run_checks(evaluator_checks(evaluator, examples, **options))
