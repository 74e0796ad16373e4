"""PrivBayes: an ε-differentially private Bayesian network learned from a discrete table.

Zhang, Cormode, Procopiuc, Srivastava & Xiao, *PrivBayes: Private Data Release
via Bayesian Networks*, ACM TODS 42(4), 2017 (SIGMOD 2014). The algorithm, as
implemented here, on ``n`` rows of ``d`` discrete columns with degree ``k``:

1. **Structure (ε₁ = ``structure_share`` · ε).** The first column is drawn
   uniformly at random (it costs nothing). Then, ``d - 1`` times, every pair
   ``(X, Π)`` of an unselected column ``X`` and a set ``Π`` of ``min(k, #selected)``
   selected columns is scored by the mutual information ``I(X; Π)`` of the
   data, and one pair is drawn by the *exponential mechanism* with probability
   ``∝ exp(ε₁ / (d - 1) · I / (2 Δ))``. ``Δ`` is the sensitivity of mutual
   information (in nats) when one row is replaced (the paper's Lemma on the
   sensitivity of ``I``, its general — larger — case for every pair):
   ``Δ = (2/n) ln((n+1)/2) + ((n-1)/n) ln((n+1)/(n-1))``.
2. **Parameters (ε₂ = ε - ε₁).** The columns' families ``(Π, X)`` need only
   ``d - k`` joint tables: the first ``k + 1`` columns form one family whose
   joint gives all of their conditionals. Each joint table of counts gets
   independent Laplace noise of scale ``2 (d - k) / ε₂`` per cell (replacing a
   row changes a table's counts by at most 2 in L1; ``d - k`` tables share
   ε₂). Negative cells are set to zero and every table is normalised; a
   parent state with no mass left gets the uniform distribution. The
   conditionals are read from the noisy joints (post-processing: no extra cost).

By sequential composition the network is ε₁ + ε₂ = ε differentially private
with respect to tables of the same size ``n`` that differ in one row (``n`` is
treated as public, as in the paper). With ``epsilon=None`` the same greedy
algorithm runs without noise (the best pair by mutual information, exact
counts): the "ε = ∞" reference of the utility tables.

What is *not* covered, and is the caller's to make public: the columns'
domains (states) and the binning (see :mod:`genarch.privacy.discretize`), and
the seed — whoever knows the seed can recompute the noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.models.bayes.learning import family_counts

__all__ = ["LearnedNetwork", "PrivacyAccount", "learn_privbayes", "mutual_information_sensitivity"]

Codes = NDArray[np.int64]
Array = NDArray[np.float64]


@dataclass(frozen=True)
class PrivacyAccount:
    """What a PrivBayes fit spent, and on what (stored with the model).

    Attributes:
        epsilon: the total privacy budget spent, ε = ε₁ + ε₂.
        structure_epsilon: ε₁, spent by the exponential mechanism choosing the structure.
        parameter_epsilon: ε₂, spent by the Laplace noise on the joint tables.
        num_rows: ``n``, treated as public.
        degree: ``k``, the most parents a column has.
        selection_steps: how many exponential-mechanism draws shared ε₁ (``d - 1``).
        mutual_information_sensitivity: ``Δ`` of mutual information (nats).
        noisy_tables: how many joint tables shared ε₂ (``d - k``).
        laplace_scale: the Laplace scale added to every count cell.
        neighbouring: what "differ in one individual" means for this guarantee.
    """

    epsilon: float
    structure_epsilon: float
    parameter_epsilon: float
    num_rows: int
    degree: int
    selection_steps: int
    mutual_information_sensitivity: float
    noisy_tables: int
    laplace_scale: float
    neighbouring: str = "tables with the same number of rows that differ in one row"

    def to_json(self) -> dict[str, Any]:
        """The account as a JSON-ready mapping."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> PrivacyAccount:
        """Read what :meth:`to_json` wrote.

        Raises:
            InvalidInputError: not a mapping of the account's fields.
        """
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"a privacy account must be an object, got {type(data).__name__}"
            )
        return cls(**data)


@dataclass(frozen=True)
class LearnedNetwork:
    """A structure and its conditional tables over coded columns.

    Attributes:
        parents: each column's parents (column indices, in the order of its table's axes).
        tables: each column's conditional table, shape ``(*parent cards, own card)``.
        order: the columns in the order they were selected.
        account: the privacy account, ``None`` without noise.
    """

    parents: tuple[tuple[int, ...], ...]
    tables: tuple[Array, ...]
    order: tuple[int, ...]
    account: PrivacyAccount | None


def mutual_information_sensitivity(num_rows: int) -> float:
    """``Δ`` of ``I(X; Π)`` in nats when one of ``num_rows`` rows is replaced (Zhang et al. 2017).

    The general case of the paper's bound, which also covers a binary ``X`` or ``Π``.
    """
    n = num_rows
    if n < 2:
        raise InvalidInputError(f"PrivBayes needs at least 2 rows, got {n}")
    return (2.0 / n) * math.log((n + 1) / 2.0) + ((n - 1) / n) * math.log((n + 1) / (n - 1))


def _entropy(counts: Array) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class _Information:
    """``I(X; Π) = H(X) + H(Π) - H(X, Π)`` on coded rows, with the entropies cached."""

    def __init__(self, codes: Codes, cards: Sequence[int]) -> None:
        self.codes, self.cards = codes, tuple(cards)
        self._entropy: dict[tuple[int, ...], float] = {}

    def entropy(self, columns: tuple[int, ...]) -> float:
        key = tuple(sorted(columns))
        if key not in self._entropy:
            if not key:
                self._entropy[key] = 0.0
            else:
                counts = family_counts(self.codes, key, self.cards)
                self._entropy[key] = _entropy(counts.ravel())
        return self._entropy[key]

    def __call__(self, x: int, parents: tuple[int, ...]) -> float:
        value = self.entropy((x,)) + self.entropy(parents) - self.entropy((*parents, x))
        return max(value, 0.0)  # rounding can make an independent pair's slightly negative


def _normalised(table: Array) -> Array:
    """Rows of ``table`` (last axis) scaled to sum to 1; an empty row becomes uniform."""
    totals = table.sum(axis=-1, keepdims=True)
    states = table.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(totals > 0, table / totals, 1.0 / states)
    return np.asarray(out, dtype=np.float64)


def learn_privbayes(
    codes: Codes,
    cards: Sequence[int],
    *,
    epsilon: float | None,
    degree: int,
    structure_share: float,
    rng: np.random.Generator,
) -> LearnedNetwork:
    """Learn a degree-``degree`` network from coded rows, ε-DP when ``epsilon`` is given.

    Args:
        codes: state codes, shape ``(n, d)``, every entry in ``[0, cards[j])``.
        cards: the number of states of each column (public).
        epsilon: the total budget, or ``None`` for the noiseless greedy algorithm.
        degree: ``k``, the most parents of a column (``>= 0``).
        structure_share: ε₁ / ε, in ``(0, 1)``.
        rng: the randomness of the first column, the draws and the noise.

    Raises:
        InvalidInputError: fewer than two rows, or a budget or share out of range.
    """
    n, d = codes.shape
    if epsilon is not None and not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInputError(f"epsilon must be a finite number > 0 (or None), got {epsilon}")
    if not 0.0 < structure_share < 1.0:
        raise InvalidInputError(f"structure_share must be in (0, 1), got {structure_share}")
    sensitivity = mutual_information_sensitivity(n)
    information = _Information(codes, cards)
    steps = d - 1
    structure_epsilon = 0.0 if epsilon is None else epsilon * structure_share
    step_epsilon = structure_epsilon / steps if steps else 0.0

    first = int(rng.integers(d))
    order = [first]
    parents: dict[int, tuple[int, ...]] = {first: ()}
    remaining = [j for j in range(d) if j != first]
    while remaining:
        size = min(degree, len(order))
        candidates = [(x, tuple(p)) for x in remaining for p in itertools.combinations(order, size)]
        scores = np.array([information(x, p) for x, p in candidates])
        if epsilon is None:
            chosen = int(np.argmax(scores))  # the first of the best: deterministic
        else:
            logits = step_epsilon * scores / (2.0 * sensitivity)
            weights = np.exp(logits - logits.max())
            chosen = int(rng.choice(len(candidates), p=weights / weights.sum()))
        x, pa = candidates[chosen]
        order.append(x)
        parents[x] = pa
        remaining.remove(x)

    # parameters: one joint over the first k+1 columns, then one per later family
    head = order[: min(degree, d - 1) + 1]
    families = [tuple(head)] + [(*parents[x], x) for x in order[len(head) :]]
    parameter_epsilon = 0.0 if epsilon is None else epsilon - structure_epsilon
    scale = 0.0 if epsilon is None else 2.0 * len(families) / parameter_epsilon
    joints = []
    for family in families:
        counts = family_counts(codes, family, cards)
        if epsilon is not None:
            counts = np.maximum(counts + rng.laplace(0.0, scale, counts.shape), 0.0)
        joints.append(counts)
    tables: dict[int, Array] = {}
    head_joint = joints[0]
    for j, x in enumerate(head):  # P(head[j] | head[:j]) from the head's joint
        marginal = (
            head_joint.sum(axis=tuple(range(j + 1, len(head)))) if j + 1 < len(head) else head_joint
        )
        tables[x] = _normalised(marginal)
        parents[x] = tuple(head[:j])
    for family, joint in zip(families[1:], joints[1:], strict=True):
        tables[family[-1]] = _normalised(joint)
    account = None
    if epsilon is not None:
        account = PrivacyAccount(
            epsilon=epsilon,
            structure_epsilon=structure_epsilon,
            parameter_epsilon=parameter_epsilon,
            num_rows=n,
            degree=degree,
            selection_steps=steps,
            mutual_information_sensitivity=sensitivity,
            noisy_tables=len(families),
            laplace_scale=scale,
        )
    return LearnedNetwork(
        parents=tuple(parents[j] for j in range(d)),
        tables=tuple(tables[j] for j in range(d)),
        order=tuple(order),
        account=account,
    )
