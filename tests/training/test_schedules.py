"""Learning-rate schedules are pure functions with the promised shape."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from genarch.errors import InvalidInputError
from genarch.training import Schedule, lr_factor

schedules = st.builds(
    lambda warmup, extra, decay, floor: Schedule(
        warmup_steps=warmup, total_steps=warmup + extra, decay=decay, min_factor=floor
    ),
    st.integers(0, 50),
    st.integers(1, 500),
    st.sampled_from(["cosine", "linear", "constant"]),
    st.floats(0.0, 1.0),
)


@given(schedules, st.integers(0, 1000))
def test_the_factor_stays_between_the_floor_and_one(schedule: Schedule, step: int) -> None:
    factor = lr_factor(schedule, step)
    assert 0.0 < factor <= 1.0 or (factor == 0.0 and schedule.min_factor == 0.0)
    if step >= schedule.warmup_steps:
        assert factor >= schedule.min_factor - 1e-12


@given(schedules)
def test_warmup_rises_and_decay_falls_to_the_floor(schedule: Schedule) -> None:
    assert schedule.total_steps is not None
    factors = [lr_factor(schedule, s) for s in range(schedule.total_steps + 5)]
    warm = schedule.warmup_steps
    rising, falling = factors[: warm + 1], factors[warm:]
    assert all(a < b for a, b in itertools.pairwise(rising))
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(falling))
    expected_end = 1.0 if schedule.decay == "constant" else schedule.min_factor
    assert factors[-1] == pytest.approx(expected_end)


@given(schedules, st.integers(0, 1000), st.lists(st.integers(0, 1000), max_size=5))
def test_the_factor_depends_only_on_the_step(
    schedule: Schedule, step: int, others: list[int]
) -> None:
    first = lr_factor(schedule, step)
    for other in others:  # calls at other steps leave nothing behind
        lr_factor(schedule, other)
    rebuilt = Schedule.model_validate(schedule.model_dump())  # nor does the object's identity
    assert lr_factor(rebuilt, step) == first


def test_the_trainer_horizon_is_used_when_the_schedule_has_none() -> None:
    schedule = Schedule(decay="linear")
    assert lr_factor(schedule, 5, total_steps=10) == pytest.approx(0.5)
    assert lr_factor(schedule, 5) == 1.0


@pytest.mark.parametrize(
    "fields",
    [
        {"warmup_steps": -1},
        {"min_factor": 1.5},
        {"decay": "exponential"},
        {"warmup_steps": 20, "total_steps": 10},
    ],
)
def test_bad_schedules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        Schedule(**fields)  # type: ignore[arg-type]
