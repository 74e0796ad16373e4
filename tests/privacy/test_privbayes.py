"""PrivBayes: the budget accounting, the mechanisms' behaviour, and the noiseless limit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from genarch.errors import InvalidInputError
from genarch.privacy.privbayes import (
    LearnedNetwork,
    learn_privbayes,
    mutual_information_sensitivity,
)


def chain(num_rows: int, seed: int = 0) -> np.ndarray:
    """Codes of a binary chain a -> b -> c (strong links) and an independent d."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, num_rows)
    b = np.where(rng.random(num_rows) < 0.9, a, 1 - a)
    c = np.where(rng.random(num_rows) < 0.9, b, 1 - b)
    d = rng.integers(0, 2, num_rows)
    return np.stack([a, b, c, d], axis=1)


def test_the_sensitivity_is_the_papers_general_bound() -> None:
    n = 1000
    expected = 2 / n * math.log((n + 1) / 2) + (n - 1) / n * math.log((n + 1) / (n - 1))
    assert mutual_information_sensitivity(n) == pytest.approx(expected)
    # the bound holds: replacing one row of a table moves I(X; Y) by at most it
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 3, n), rng.integers(0, 3, n)

    def information(x: np.ndarray, y: np.ndarray) -> float:
        joint = np.bincount(x * 3 + y, minlength=9).reshape(3, 3) / n
        outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
        mask = joint > 0
        return float((joint[mask] * np.log(joint[mask] / outer[mask])).sum())

    base = information(x, y)
    for row in range(20):
        x2, y2 = x.copy(), y.copy()
        x2[row], y2[row] = (x[row] + 1) % 3, (y[row] + 2) % 3
        assert abs(information(x2, y2) - base) <= expected


def test_the_budget_is_split_and_accounted() -> None:
    learned = learn_privbayes(
        chain(500),
        [2, 2, 2, 2],
        epsilon=1.0,
        degree=1,
        structure_share=0.3,
        rng=np.random.default_rng(0),
    )
    account = learned.account
    assert account is not None
    assert (account.structure_epsilon, account.parameter_epsilon) == pytest.approx((0.3, 0.7))
    assert account.selection_steps == 3
    assert account.noisy_tables == 3
    assert account.laplace_scale == pytest.approx(2 * 3 / 0.7)
    assert account.num_rows == 500


def test_without_noise_the_greedy_structure_follows_the_chain() -> None:
    learned = learn_privbayes(
        chain(5000),
        [2, 2, 2, 2],
        epsilon=None,
        degree=1,
        structure_share=0.3,
        rng=np.random.default_rng(0),
    )
    edges = {frozenset((p, v)) for v, parents in enumerate(learned.parents) for p in parents}
    assert {frozenset((0, 1)), frozenset((1, 2))} <= edges
    assert learned.account is None
    for table in learned.tables:  # exact conditionals: rows sum to 1
        assert np.allclose(table.sum(axis=-1), 1.0)


def binary_network(codes: np.ndarray, epsilon: float, seed: int) -> LearnedNetwork:
    """A degree-1 network over binary columns, half the budget on the structure."""
    return learn_privbayes(
        codes, [2] * codes.shape[1], epsilon=epsilon, degree=1, structure_share=0.5,
        rng=np.random.default_rng(seed),
    )  # fmt: skip


def network_joint(learned: LearnedNetwork) -> np.ndarray:
    """P(a, b, c, d) of a learned network over four binary columns, as 16 numbers."""
    joint = np.ones(16)
    for i, state in enumerate(itertools.product(range(2), repeat=4)):
        for v, parents in enumerate(learned.parents):
            joint[i] *= learned.tables[v][(*(state[p] for p in parents), state[v])]
    return joint


def test_a_large_budget_learns_the_joint_a_small_one_hides_it() -> None:
    codes = chain(3000)
    empirical = np.bincount(codes @ np.array([8, 4, 2, 1]), minlength=16) / len(codes)

    def distance(epsilon: float) -> float:  # mean total variation over 20 seeds
        distances = []
        for seed in range(20):
            learned = binary_network(codes, epsilon, seed)
            distances.append(0.5 * float(np.abs(network_joint(learned) - empirical).sum()))
        return float(np.mean(distances))

    assert distance(1000.0) < 0.05  # measured 0.006
    assert distance(0.05) > 0.15  # measured 0.36


def test_a_large_budget_picks_the_informative_links_a_tiny_one_does_not() -> None:
    codes = chain(3000)
    kept = {"large": 0, "tiny": 0}
    for seed in range(30):
        for name, epsilon in (("large", 50.0), ("tiny", 1e-6)):
            learned = binary_network(codes, epsilon, seed)
            edges = {frozenset((p, v)) for v, ps in enumerate(learned.parents) for p in ps}
            kept[name] += {frozenset((0, 1)), frozenset((1, 2))} <= edges
    assert kept["large"] >= 27  # measured 60 of 60 at seeds 0..59
    assert kept["tiny"] <= 15  # measured 3 of 60: close to a random tree


def test_fewer_than_two_rows_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="at least 2 rows"):
        learn_privbayes(
            np.zeros((1, 2), dtype=np.int64),
            [2, 2],
            epsilon=1.0,
            degree=1,
            structure_share=0.3,
            rng=np.random.default_rng(0),
        )
