"""Factors (tables over discrete variables) and the elimination machinery of exact inference.

A factor is a non-negative numpy table whose axis ``i`` belongs to variable
``scope[i]`` (variables are integer indices into the network): a
:class:`Factor` for MAP and posterior sampling, which keep every step's
product, and a plain ``(scope, table)`` pair for :func:`sum_product`, the
sum-product of queries and evidence probabilities. Both eliminate in a greedy
min-weight order (:func:`elimination_order`: eliminate the variable whose
table would be smallest, ties broken by index so the order is deterministic).

To stay clear of underflow on long chains, :func:`eliminate` rescales each
table it produces so its largest entry is 1, and carries the logarithm of the
scale separately; :func:`sum_product` first sums without rescaling and redoes
the sum with rescaling only when the result could have left the
floating-point range.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Factor",
    "InverseCdf",
    "NetworkTables",
    "contract",
    "eliminate",
    "elimination_order",
    "product",
    "sum_product",
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
    def families(self) -> tuple[tuple[int, ...], ...]:
        """Each variable's CPT scope: its parents, then itself (the axes of its table)."""
        return tuple((*parents, v) for v, parents in enumerate(self.parents))

    @cached_property
    def positive(self) -> tuple[bool, ...]:
        """Whether each CPT is strictly positive (then any evidence on its family is possible)."""
        return tuple(bool((cpt > 0.0).all()) for cpt in self.cpts)

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


MANY_STATES = 16
"""A variable with more states than this draws by ``searchsorted`` (:class:`InverseCdf`)."""


@dataclass(frozen=True)
class InverseCdf:
    """One CPT prepared for vectorised inverse-CDF draws.

    A uniform ``u`` in [0, 1) for parent configuration ``q`` draws the state
    ``k`` with ``F(k - 1 | q) <= u < F(k | q)``, ``F`` the cumulative
    distribution: the count of the cumulative probabilities ``F(0 | q)``, …,
    ``F(states - 2 | q)`` that are at most ``u``. From each configuration's
    last state of positive probability on they are stored as exactly 1, so
    rounding in the sums never draws an impossible state.

    With up to :data:`MANY_STATES` states that count is one gather and one
    comparison per state (``thresholds``), which beats a binary search on small
    tables. With more, one ``searchsorted`` serves all configurations: row ``q``
    of the cumulative table is stored shifted by ``2 q`` (``shifted``), so the
    rows lie in one sorted array and ``u`` is looked up as ``2 q + u``; a lookup
    that rounding pushes past its row's last possible state is clipped to it.
    """

    thresholds: Array  # (states - 1, configurations): F(k | q), 1.0 from the last possible state on
    shifted: Array  # (configurations * states,), sorted; empty unless states > MANY_STATES
    last: NDArray[np.int64]  # (configurations,): each row's last state of positive probability

    @classmethod
    def of(cls, cpt: Array) -> InverseCdf:
        states = cpt.shape[-1]
        flat = cpt.reshape(-1, states)  # (configurations, states)
        cumulative = np.cumsum(flat, axis=1)
        cumulative /= cumulative[:, -1:]
        last = states - 1 - np.argmax(flat[:, ::-1] > 0, axis=1)
        cumulative[np.arange(states)[None, :] >= last[:, None]] = 1.0
        shifted = (
            (cumulative + 2.0 * np.arange(flat.shape[0])[:, None]).ravel()
            if states > MANY_STATES
            else np.zeros(0)
        )
        return cls(np.ascontiguousarray(cumulative[:, :-1].T), shifted, last.astype(np.int64))

    def draw(self, configurations: NDArray[np.int64] | None, uniforms: Array) -> NDArray[np.int64]:
        """One state per row from configurations (N,) — ``None``: no parents — and uniforms (N,)."""
        if self.shifted.size:
            q = np.zeros(uniforms.shape, np.int64) if configurations is None else configurations
            found = np.searchsorted(self.shifted, 2.0 * q + uniforms, side="right")
            states = found - q * (self.thresholds.shape[0] + 1)
            return np.asarray(np.minimum(states, self.last[q]), dtype=np.int64)
        drawn = np.zeros(uniforms.shape, dtype=np.int64)
        for row in self.thresholds:  # F(k | q) for each row's q: a scalar without parents
            drawn += uniforms >= (row[0] if configurations is None else row.take(configurations))
        return drawn


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


def elimination_order(
    scopes: Iterable[Sequence[int]],
    eliminate: Iterable[int],
    cards: Sequence[int],
    *,
    until: int = 0,
) -> list[int]:
    """A greedy min-weight elimination order of ``eliminate`` for factors over these ``scopes``.

    At each step the variable whose elimination builds the smallest table —
    the product of the state counts of it and its current neighbours — goes
    next, ties broken by index so the order is deterministic (Koller &
    Friedman 2009, section 9.4.3.2). Eliminating a variable joins its
    neighbours into a clique, which changes only *their* weights, so a step
    rescores those alone: an order costs a few set operations per variable.

    Args:
        scopes: the variables of each factor.
        eliminate: the variables to order (the others stay).
        cards: the number of states of every variable.
        until: stop early, once the variables not yet eliminated (those that
            stay included) have at most this many joint states and number at
            most :data:`FINAL_EINSUM_VARIABLES`; the order is then a prefix, and
            what is left is small enough to sum at once (:func:`contract`).
    """
    neighbours: dict[int, set[int]] = {}
    for scope in scopes:
        for v in scope:
            neighbours.setdefault(v, set()).update(scope)
    for v, near in neighbours.items():
        near.discard(v)
    remaining = set(eliminate)
    alive = neighbours.keys() | remaining
    joint, count = math.prod(map(cards.__getitem__, alive)), len(alive)
    costs = {
        v: (math.prod(map(cards.__getitem__, neighbours.get(v, ())), start=cards[v]), v)
        for v in remaining
    }
    order: list[int] = []
    while remaining and (joint > until or count > FINAL_EINSUM_VARIABLES):
        best = min(remaining, key=costs.__getitem__)
        remaining.discard(best)
        order.append(best)
        joint //= cards[best]
        count -= 1
        near = neighbours.pop(best, set())
        for a in near:
            joined = neighbours[a]
            joined |= near
            joined.discard(a)
            joined.discard(best)
            if a in remaining:
                costs[a] = (math.prod(map(cards.__getitem__, joined), start=cards[a]), a)
    return order


FINAL_EINSUM_STATES = 1024
"""Elimination stops once the variables left have at most this many joint states (:func:`sum_product`)."""

FINAL_EINSUM_VARIABLES = 32
"""Elimination stops early only once at most this many variables are left (einsum takes 52 labels)."""

SAFE_SCALE = 1e40
"""Unscaled sums are trusted when all variables together have at most this many joint states."""

SAFE_TOTAL = 1e-200
"""Unscaled sums are trusted when the answer's total is at least this."""


def sum_product(
    factors: Sequence[tuple[Sequence[int], Array]], output: Sequence[int], cards: Sequence[int]
) -> tuple[Array, float]:
    """The product of the factors, summed over every variable not in ``output``.

    Variables are eliminated one at a time in a min-weight order
    (:func:`elimination_order`, :func:`contract`) until the ones left have at
    most :data:`FINAL_EINSUM_STATES` joint states; one ``np.einsum`` call then
    sums out the rest, since a pass over a joint that small costs less than
    ordering and eliminating it variable by variable (a small network, such as
    asia, is a single call).

    The sum first runs without rescaling. That is exact to rounding when no
    table can leave the floating-point range: every factor entry is at most 1,
    so a sum over ``k`` joint states is at most ``k`` (bounded by
    :data:`SAFE_SCALE`), and a total of at least :data:`SAFE_TOTAL` dwarfs any
    underflowed term (below 1e-307, times at most 1e40, so some 1e-67 of it).
    Otherwise the sum is redone variable by variable with every table rescaled.

    Returns:
        the table (axes in ``output``'s order; every ``output`` variable must
        be in some factor) and the log of the scale factored out of it: the
        sum is ``table * exp(log_scale)``.
    """
    if not factors:  # an empty product, over no variables
        return np.ones(()), 0.0
    scopes = [scope for scope, _ in factors]
    variables = {v for scope in scopes for v in scope}
    hidden = variables.difference(output)
    joint = math.prod(map(cards.__getitem__, variables))
    order = (
        elimination_order(scopes, hidden, cards, until=FINAL_EINSUM_STATES)
        if joint > FINAL_EINSUM_STATES or len(variables) > FINAL_EINSUM_VARIABLES
        else []
    )
    answer, log_scale = contract(factors, order, output, rescale=False)
    if joint <= SAFE_SCALE and float(answer.sum()) >= SAFE_TOTAL:
        return answer, log_scale
    return contract(factors, elimination_order(scopes, hidden, cards), output, rescale=True)


def contract(
    factors: Iterable[tuple[Sequence[int], Array]],
    order: Sequence[int],
    output: Sequence[int],
    *,
    rescale: bool,
) -> tuple[Array, float]:
    """Sum the factors' product over ``order`` one variable at a time, then the rest at once.

    Bucket elimination (Dechter 1999): each factor waits in the bucket of its
    first variable in ``order``; a bucket's factors are multiplied and its
    variable summed out in one ``np.einsum`` call (no intermediate product
    table), and the result moves to the bucket of its next variable. The
    factors no bucket takes are multiplied and summed over every variable not
    in ``output`` by one last ``np.einsum`` call. Every ``output`` variable
    must be in some factor.

    With ``rescale``, a table whose largest entry leaves ``[1e-200, 1e200]``
    is divided by it and the logarithm added to the returned log scale, so long
    products neither underflow nor overflow (``order`` should then hold every
    variable not in ``output``, so the last call multiplies rescaled tables only).

    Returns:
        the table over ``output`` (axes in its order) and the log scale: the
        sum is ``table * exp(log_scale)``.
    """
    last = len(order)
    position = dict(zip(order, range(last), strict=True)).get  # position(v, last): last if kept
    buckets: list[list[tuple[Sequence[int], Array]]] = [[] for _ in range(last + 1)]
    for factor in factors:  # each to the bucket of its first variable to go
        buckets[min(map(position, factor[0], repeat(last)), default=last)].append(factor)
    log_scale = 0.0
    for step, variable in enumerate(order):
        bucket = buckets[step]
        if not bucket:
            continue
        if len(bucket) > MAX_OPERANDS:
            # keep every variable: other buckets may hold them too
            bucket, scale = _grouped(
                bucket, {v for scope, _ in bucket for v in scope}, rescale=rescale
            )
            log_scale += scale
        labels: dict[int, int] = {}  # einsum labels must be small: number this bucket's variables
        operands: list[Any] = []
        for scope, table in bucket:
            operands.append(table)
            operands.append([labels.setdefault(v, len(labels)) for v in scope])
        del labels[variable]
        operands.append(list(labels.values()))
        summed = np.einsum(*operands)  # small tables: no contraction-path search
        if rescale:
            summed, scale = _rescaled(summed)
            log_scale += scale
        kept = tuple(labels)
        buckets[min(map(position, kept, repeat(last)), default=last)].append((kept, summed))
    left = buckets[last]
    if len(left) > MAX_OPERANDS:
        left, scale = _grouped(left, output, rescale=rescale)
        log_scale += scale
    labels = {v: i for i, v in enumerate(output)}
    operands = []
    for scope, table in left:
        operands.append(table)
        operands.append([labels.setdefault(v, len(labels)) for v in scope])
    if not operands:
        return np.ones(()), log_scale
    operands.append(list(range(len(output))))
    answer = np.einsum(*operands)
    if rescale:
        answer, scale = _rescaled(answer)
        log_scale += scale
    return answer, log_scale


MAX_OPERANDS = 16
"""Factors per ``np.einsum`` call at most (numpy takes 32 or 64 operands): more are grouped first."""


def _grouped(
    factors: Sequence[tuple[Sequence[int], Array]], output: Collection[int], *, rescale: bool
) -> tuple[list[tuple[Sequence[int], Array]], float]:
    """At most :data:`MAX_OPERANDS` factors with the same product, summed over what only they hold.

    Groups of :data:`MAX_OPERANDS` factors are multiplied into one (one
    ``np.einsum`` each), summing out the variables that no other of
    ``factors`` and no ``output`` variable needs — so ``factors`` must be every
    factor left, or ``output`` every variable to keep. A naive Bayes class
    queried given a hundred features has a hundred factors to multiply.

    Returns:
        the factors and the log scale factored out (with ``rescale``; else 0).
    """
    pool = list(factors)
    log_scale = 0.0
    while len(pool) > MAX_OPERANDS:
        group, pool = pool[:MAX_OPERANDS], pool[MAX_OPERANDS:]
        needed = set(output).union(*(scope for scope, _ in pool))
        labels: dict[int, int] = {}
        operands: list[Any] = []
        for scope, table in group:
            operands.append(table)
            operands.append([labels.setdefault(v, len(labels)) for v in scope])
        kept = tuple(v for v in labels if v in needed)
        operands.append([labels[v] for v in kept])
        product = np.einsum(*operands)
        if rescale:
            product, scale = _rescaled(product)
            log_scale += scale
        pool.append((kept, product))
    return pool, log_scale


def _rescaled(table: Array) -> tuple[Array, float]:
    """``table`` and 0, or, if its peak is outside ``[1e-200, 1e200]``, ``table / peak`` and ``log peak``."""
    peak = float(table.max()) if table.size else 0.0
    if 1e-200 <= peak <= 1e200 or not peak > 0.0:
        return table, 0.0
    return table / peak, math.log(peak)


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
