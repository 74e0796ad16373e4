"""``check_evaluator`` catches evaluators that break the protocol, and passes the honest ones."""

from __future__ import annotations

import random
from typing import Any

import pytest

from genarch.errors import ConformanceError
from genarch.evaluation import TokenF1
from genarch.schemas import Evaluation
from genarch.testing import check_evaluator, evaluator_checks

EXAMPLES = [("Paris", "paris"), ("Rome", "in Rome"), ("Oslo", "Bergen")]


class Noisy:
    """Adds global-RNG noise: not deterministic."""

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        return Evaluation(scores={"f1": random.random()})


class Counting:
    """Remembers how often it was called: state between calls."""

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        self.calls += 1
        return Evaluation(scores={"f1": float(self.calls)})


class Infinite:
    def evaluate(self, request: Any, result: Any) -> Evaluation:
        return Evaluation(scores={"f1": float("inf")})


class Shapeshifter:
    """Score names depend on the input."""

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        return Evaluation(scores={str(request): 1.0})


class Lenient:
    """Accepts anything, raises nothing."""

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        return Evaluation(scores={"f1": 0.0})


class Crashing:
    """Raises a bare TypeError instead of a GenarchError."""

    def evaluate(self, request: Any, result: Any) -> Evaluation:
        return Evaluation(scores={"f1": float(len(result))})


@pytest.mark.parametrize(
    ("evaluator", "failing"),
    [
        (Noisy(), "deterministic"),
        (Counting(), "no_state_between_calls"),
        (Infinite(), "returns_finite_scores"),
        (Shapeshifter(), "same_score_names"),
        (Lenient(), "rejects_invalid_input"),
        (Crashing(), "rejects_invalid_input"),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, str) else value,
)
def test_the_kit_catches_a_broken_evaluator(evaluator: Any, failing: str) -> None:
    with pytest.raises(ConformanceError) as caught:
        check_evaluator(evaluator, EXAMPLES)
    assert failing in [name for name, _ in caught.value.failures]


def test_the_kit_passes_an_honest_evaluator_and_names_its_checks() -> None:
    names = [check.name for check in evaluator_checks(TokenF1(), EXAMPLES)]
    assert names == [
        "returns_finite_scores",
        "same_score_names",
        "deterministic",
        "no_state_between_calls",
        "rejects_invalid_input",
        "config_roundtrip",
    ]
    assert check_evaluator(TokenF1(), EXAMPLES) == names
