"""Factors (tables over discrete variables) and the elimination machinery of exact inference.

A :class:`Factor` is a non-negative numpy table whose axis ``i`` belongs to
variable ``variables[i]`` (variables are integer indices into the network).
Products broadcast over the union of the variables; elimination follows a
greedy min-fill order (Kjærulff 1990: eliminate the variable whose
neighbours need the fewest new edges to become a clique, ties broken by the
smallest clique weight, then by index so the order is deterministic).

To stay clear of underflow on long chains, each factor produced by an
elimination is rescaled so its largest entry is 1 and the logarithm of the
scale is carried separately (:class:`Eliminated`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Factor", "NetworkTables", "eliminate", "min_fill_order", "product"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class NetworkTables:
    """The numbers of a network, as inference reads them.

    Attributes:
        cards: number of states of each variable.
        parents: parent indices of each variable.
        cpts: each variable's table, shape ``(*parent cards, own card)``.
        order: a topological order (parents before children).
    """

    cards: tuple[int, ...]
    parents: tuple[tuple[int, ...], ...]
    cpts: tuple[Array, ...]
    order: tuple[int, ...]

    def ancestral_set(self, variables: Iterable[int]) -> set[int]:
        """``variables`` and all their ancestors."""
        found: set[int] = set()
        stack = list(variables)
        while stack:
            v = stack.pop()
            if v not in found:
                found.add(v)
                stack.extend(self.parents[v])
        return found

    def factors(self, keep: Iterable[int], evidence: Mapping[int, int]) -> list[Factor]:
        """The CPTs of ``keep`` as factors, with the evidence variables fixed."""
        return [Factor((*self.parents[v], v), self.cpts[v]).reduce(evidence) for v in sorted(keep)]


@dataclass(frozen=True)
class Factor:
    """A table over ``variables``: axis ``i`` of ``table`` is variable ``variables[i]``."""

    variables: tuple[int, ...]
    table: Array

    def reduce(self, evidence: Mapping[int, int]) -> Factor:
        """Fix the evidence variables to their states (their axes disappear)."""
        if not any(v in evidence for v in self.variables):
            return self
        index = tuple(evidence.get(v, slice(None)) for v in self.variables)
        kept = tuple(v for v in self.variables if v not in evidence)
        return Factor(kept, np.asarray(self.table[index], dtype=np.float64))

    def expanded(self, variables: Sequence[int]) -> Array:
        """The table with axes in ``variables``' order, size 1 where absent (to broadcast)."""
        position = {v: i for i, v in enumerate(variables)}
        axes = sorted(range(len(self.variables)), key=lambda a: position[self.variables[a]])
        table = self.table.transpose(axes)
        shape = [1] * len(variables)
        for axis in axes:
            shape[position[self.variables[axis]]] = self.table.shape[axis]
        return table.reshape(shape)


def product(factors: Sequence[Factor]) -> Factor:
    """The pointwise product over the union of the factors' variables."""
    variables: list[int] = []
    for factor in factors:
        variables.extend(v for v in factor.variables if v not in variables)
    table: Array = np.ones([1] * len(variables))
    for factor in factors:
        table = table * factor.expanded(variables)
    return Factor(tuple(variables), table)


def min_fill_order(
    factors: Sequence[Factor], eliminate: Iterable[int], cards: Sequence[int]
) -> list[int]:
    """A greedy min-fill elimination order of ``eliminate`` for these factors."""
    neighbours: dict[int, set[int]] = {}
    for factor in factors:
        for v in factor.variables:
            neighbours.setdefault(v, set()).update(u for u in factor.variables if u != v)
    remaining = set(eliminate)
    order: list[int] = []
    while remaining:

        def cost(v: int) -> tuple[int, float, int]:
            near = sorted(neighbours.get(v, set()))
            fill = sum(
                1 for i, a in enumerate(near) for b in near[i + 1 :] if b not in neighbours[a]
            )
            weight = math.fsum(math.log(cards[u]) for u in near) + math.log(cards[v])
            return fill, weight, v

        best = min(remaining, key=cost)
        near = neighbours.pop(best, set())
        for a in near:
            neighbours[a].discard(best)
            neighbours[a].update(near - {a})
        remaining.discard(best)
        order.append(best)
    return order


@dataclass(frozen=True)
class Eliminated:
    """What one elimination step left: the combined factor before summing/maximising."""

    variable: int
    combined: Factor  # the product of every factor that held ``variable``


def eliminate(
    factors: Sequence[Factor],
    order: Sequence[int],
    reduce: Callable[[Array, int], Array],
) -> tuple[list[Factor], list[Eliminated], float]:
    """Eliminate ``order`` one variable at a time with ``reduce`` (``np.sum`` or ``np.max``).

    Returns:
        the factors left, each step's combined factor, and the log of the scale
        factored out of the tables (multiply the result by ``exp`` of it).
    """
    pool = list(factors)
    steps: list[Eliminated] = []
    log_scale = 0.0
    for variable in order:
        related = [f for f in pool if variable in f.variables]
        if not related:
            continue
        pool = [f for f in pool if variable not in f.variables]
        combined = product(related)
        axis = combined.variables.index(variable)
        table = reduce(combined.table, axis)
        peak = float(table.max()) if table.size else 0.0
        if peak > 0.0:
            table = table / peak
            log_scale += math.log(peak)
        kept = tuple(v for v in combined.variables if v != variable)
        pool.append(Factor(kept, table))
        steps.append(Eliminated(variable, combined))
    return pool, steps, log_scale
