"""Checks for the training layer: :class:`~genarch.protocols.Optimizer`."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

from genarch.errors import InvalidInputError
from genarch.protocols import Optimizer
from genarch.schemas import StepReport
from genarch.testing._compare import assert_same
from genarch.testing._kit import (
    Check,
    expect_genarch_error,
    require,
    run_checks,
    scrambled_global_rngs,
)

__all__ = ["check_optimizer", "optimizer_checks"]


def optimizer_checks(
    make_optimizer: Callable[[], Optimizer[Any]],
    batches: Sequence[Any],
    *,
    invalid_batches: Sequence[Any] = (),
    label: str | None = None,
) -> list[Check]:
    """Checks for an :class:`~genarch.protocols.Optimizer`.

    Args:
        make_optimizer: builds a fresh optimizer (model included) in the same
            initial state every time — seed it.
        batches: at least three valid batches.
        invalid_batches: batches it must refuse without changing any parameter.
        label: name shown in reports.

    Raises:
        InvalidInputError: fewer than three batches (a ``ValueError``).
    """
    if len(batches) < 3:
        raise InvalidInputError(
            f"optimizer_checks needs at least three batches, got {len(batches)}"
        )
    subject = label or type(make_optimizer()).__name__

    def reports_steps() -> None:
        optimizer = make_optimizer()
        for number, batch in enumerate(batches, start=1):
            report = optimizer.step(batch)
            require(
                isinstance(report, StepReport),
                f"expected step() to return a StepReport, got {type(report).__name__}",
            )
            require(
                report.step == number,
                f"expected step {number} to report step={number}, got {report.step}",
            )
            require(report.losses, f"expected step {number} to report at least one loss, got none")

    def deterministic() -> None:
        reports = []
        for _ in range(2):
            optimizer = make_optimizer()
            with scrambled_global_rngs():
                reports.append([optimizer.step(b) for b in batches])
        assert_same(reports[1], reports[0], path="second run's reports")

    def exact_resume() -> None:
        original = make_optimizer()
        for batch in batches[:-1]:
            original.step(batch)
        state = copy.deepcopy(original.state_dict())
        resumed = make_optimizer()
        resumed.load_state_dict(state)
        with scrambled_global_rngs():
            expected = original.step(batches[-1])
        with scrambled_global_rngs():
            actual = resumed.step(batches[-1])
        assert_same(actual, expected, path="report after resume")
        assert_same(resumed.state_dict(), original.state_dict(), path="state after resume")

    def rejects_bad_batches() -> None:
        optimizer = make_optimizer()
        optimizer.step(batches[0])
        before = copy.deepcopy(optimizer.state_dict())
        for index, bad in enumerate([object(), *invalid_batches]):
            expect_genarch_error(functools.partial(optimizer.step, bad), f"bad batch {index}")
        assert_same(optimizer.state_dict(), before, path="state after refused batches")

    checks = [reports_steps, deterministic, exact_resume, rejects_bad_batches]
    return [Check("Optimizer", c.__name__, subject, c) for c in checks]


def check_optimizer(
    make_optimizer: Callable[[], Optimizer[Any]], batches: Sequence[Any], **options: Any
) -> list[str]:
    """Run :func:`optimizer_checks`; raise :class:`~genarch.errors.ConformanceError` on failure."""
    return run_checks(optimizer_checks(make_optimizer, batches, **options))
