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
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Factor",
    "InverseCdf",
    "NetworkTables",
    "eliminate",
    "min_fill_order",
    "product",
    "sum_out",
]

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

    @cached_property
    def samplers(self) -> tuple[InverseCdf, ...]:
        """Each variable's :class:`InverseCdf` (built on first use, then kept)."""
        return tuple(InverseCdf.of(cpt) for cpt in self.cpts)

    @cached_property
    def ancestors(self) -> tuple[frozenset[int], ...]:
        """Each variable with all its ancestors (built on first use, in topological order)."""
        found: list[frozenset[int]] = [frozenset()] * len(self.cards)
        for v in self.order:
            found[v] = frozenset({v}).union(*(found[p] for p in self.parents[v]))
        return tuple(found)

    def ancestral_set(self, variables: Iterable[int]) -> set[int]:
        """``variables`` and all their ancestors."""
        ancestors = self.ancestors
        return set().union(*(ancestors[v] for v in variables))

    def factors(self, keep: Iterable[int], evidence: Mapping[int, int]) -> list[Factor]:
        """The CPTs of ``keep`` as factors, with the evidence variables fixed."""
        return [Factor((*self.parents[v], v), self.cpts[v]).reduce(evidence) for v in sorted(keep)]


@dataclass(frozen=True)
class InverseCdf:
    """One CPT prepared for vectorised inverse-CDF draws with a single ``searchsorted``.

    Row ``q`` (a parent configuration) of the cumulative table is stored
    shifted by ``2 q``, so all rows lie in one sorted array, ``[0, 1]``,
    ``[2, 3]``, …; a uniform ``u`` for configuration ``q`` is looked up as
    ``2 q + u``. ``last`` is each row's last state of positive probability: a
    lookup that rounding pushes past the end of its row is clipped to it, so an
    impossible state is never drawn.
    """

    bounds: Array  # (configurations * states,), sorted
    last: NDArray[np.int64]  # (configurations,)
    states: int

    @classmethod
    def of(cls, cpt: Array) -> InverseCdf:
        states = cpt.shape[-1]
        flat = cpt.reshape(-1, states)  # (configurations, states)
        cumulative = np.cumsum(flat, axis=1)
        cumulative /= cumulative[:, -1:]
        cumulative[:, -1] = 1.0
        shift = 2.0 * np.arange(flat.shape[0])[:, None]
        last = states - 1 - np.argmax(flat[:, ::-1] > 0, axis=1)
        return cls((cumulative + shift).ravel(), last.astype(np.int64), states)

    def draw(self, configurations: NDArray[np.int64], uniforms: Array) -> NDArray[np.int64]:
        """One state per row: configurations (N,) and uniforms in [0, 1) (N,) -> states (N,)."""
        found = np.searchsorted(self.bounds, 2.0 * configurations + uniforms, side="right")
        states = found - configurations * self.states
        return np.asarray(np.minimum(states, self.last[configurations]), dtype=np.int64)


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
    """A greedy min-fill elimination order of ``eliminate`` for these factors.

    Each candidate's cost ``(fill edges, log clique size, index)`` is cached and
    recomputed only for the nodes an elimination can change (the eliminated
    node's neighbours, and nodes two of whose neighbours a fill edge joined),
    so an order costs far less than rescoring every remaining node at every step.
    """
    neighbours: dict[int, set[int]] = {}
    for factor in factors:
        for v in factor.variables:
            neighbours.setdefault(v, set()).update(u for u in factor.variables if u != v)
    remaining = set(eliminate)
    logs = {v: math.log(cards[v]) for v in (*neighbours, *remaining)}

    def cost(v: int) -> tuple[int, float, int]:
        near = neighbours.get(v, set())
        # fill edges = pairs of neighbours minus the edges already among them (map: no frames)
        linked = sum(map(len, map(near.intersection, map(neighbours.__getitem__, near)))) // 2
        fill = len(near) * (len(near) - 1) // 2 - linked
        weight = sum(map(logs.__getitem__, near)) + logs[v]
        return fill, weight, v

    costs = {v: cost(v) for v in remaining}
    order: list[int] = []
    while remaining:
        best = min(remaining, key=costs.__getitem__)
        near = neighbours.pop(best, set())
        for a in near:
            neighbours[a].discard(best)
            neighbours[a].update(near - {a})
        remaining.discard(best)
        order.append(best)
        # Only the neighbours' own neighbourhoods changed; another node's fill changes only
        # when a fill edge joined two of its neighbours, which needs two of them in `near`.
        touched = set(near)
        if costs[best][0] > 0:
            for a in near:
                touched.update(w for w in neighbours[a] if len(neighbours[w] & near) >= 2)
        for v in touched & remaining:
            costs[v] = cost(v)
    return order


def sum_out(factors: Sequence[Factor], order: Sequence[int]) -> tuple[list[Factor], float]:
    """Sum ``order`` out of the factors' product, one variable at a time.

    What :func:`eliminate` with ``np.sum`` returns (the factors left and the
    log of the scale factored out), without keeping each step's product: every
    step is one ``np.einsum`` call (multiply and sum without the intermediate
    table), which is most of the speed of exact queries.
    """
    pool = list(factors)
    log_scale = 0.0
    for variable in order:
        related = [f for f in pool if variable in f.variables]
        if not related:
            continue
        pool = [f for f in pool if variable not in f.variables]
        local: dict[int, int] = {}  # einsum labels must be small: number this step's variables
        operands: list[Any] = []
        for factor in related:
            operands += [factor.table, [local.setdefault(v, len(local)) for v in factor.variables]]
        kept = tuple(v for v in local if v != variable)
        operands.append([local[v] for v in kept])
        table = np.einsum(*operands)  # small tables: no contraction-path search
        peak = float(table.max()) if table.size else 0.0
        if peak > 0.0:
            table = table / peak
            log_scale += math.log(peak)
        pool.append(Factor(kept, np.asarray(table, dtype=np.float64)))
    return pool, log_scale


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
