"""Exact inference and sampling on integer-coded networks.

* :func:`posterior` — variable elimination (Zhang & Poole 1994; bucket
  elimination, Dechter 1999) in a min-weight order: the joint posterior of some
  variables given evidence. Only the requisite CPTs take part
  (:func:`requisite`): those of the ancestors of the query and evidence
  variables (the others are *barren*: they sum to one), and of those the ones
  the evidence does not cut off from the query. :func:`log_evidence` is the
  log probability of the evidence.
* :func:`most_probable` — the MAP (most probable explanation) assignment by
  max-product elimination with a traceback (Dechter 1999).
* :func:`forward_sample` — ancestral sampling, vectorised over rows.
* :func:`posterior_sample` — *exact* sampling under evidence: sum-product
  elimination keeps each step's combined factor, then variables are drawn in
  reverse elimination order from those factors, conditioned on the ones already
  drawn (forward filtering, backward sampling). Unlike likelihood weighting or
  rejection it needs no weights and wastes no draws, and it is vectorised over
  rows.
* :func:`likelihood_weighting` — *approximate* posteriors for networks too
  large for elimination (Fung & Chang 1990; Shachter & Peot 1990): ancestral
  sampling with the evidence variables clamped, each row weighted by the
  probability of the evidence given its parents. Vectorised over rows; only
  the ancestors of the query and evidence variables are sampled.

Everything works on :class:`~genarch.models.bayes._factors.NetworkTables` and
integer state codes; :class:`~genarch.models.bayes.BayesianNetwork` translates
names and states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from genarch.errors import InvalidInputError
from genarch.models.bayes._factors import (
    NetworkTables,
    eliminate,
    elimination_order,
    product,
    sum_product,
)

__all__ = [
    "forward_sample",
    "likelihood_weighting",
    "log_evidence",
    "log_joint",
    "most_probable",
    "posterior",
    "posterior_sample",
    "reduced",
    "requisite",
]

Array = NDArray[np.float64]
Codes = NDArray[np.int64]


def posterior(tables: NetworkTables, query: Sequence[int], evidence: Mapping[int, int]) -> Array:
    """``P(query | evidence)`` as a table with one axis per query variable (``query`` non-empty).

    Only the CPTs that can change the answer take part (:func:`requisite`);
    the ones left out multiply the answer by a positive constant, which
    normalising removes.

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    table, _ = sum_product(requisite(tables, query, evidence), query, tables.cards)
    total = float(table.sum())
    if not total > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    return np.asarray(table / total, dtype=np.float64)


def log_evidence(tables: NetworkTables, evidence: Mapping[int, int]) -> float:
    """``log P(evidence)``, ``-inf`` when it has probability zero, by variable elimination.

    Only the CPTs of the evidence variables and their ancestors take part (the
    others sum to one).
    """
    factors = reduced(tables, sorted(tables.ancestral_set(evidence)), evidence)
    table, log_scale = sum_product(factors, [], tables.cards)
    total = float(table)
    return math.log(total) + log_scale if total > 0.0 else -math.inf


def reduced(
    tables: NetworkTables, variables: Sequence[int], evidence: Mapping[int, int]
) -> list[tuple[tuple[int, ...], Array]]:
    """The CPTs of ``variables`` as ``(scope, table)`` pairs, the evidence variables fixed.

    A fixed variable's axis is indexed away (a view, no copy), so it leaves the scope.
    """
    found = []
    families, cpts = tables.families, tables.cpts
    for v in variables:
        family = families[v]
        if not evidence.keys().isdisjoint(family):
            index = tuple(evidence.get(u, slice(None)) for u in family)
            found.append((tuple(u for u in family if u not in evidence), cpts[v][index]))
        else:
            found.append((family, cpts[v]))
    return found


def requisite(
    tables: NetworkTables, query: Sequence[int], evidence: Mapping[int, int]
) -> list[tuple[tuple[int, ...], Array]]:
    """The CPTs, reduced by the evidence, that ``P(query | evidence)`` depends on.

    Start from the ancestral set of the query and evidence variables (the
    other CPTs are *barren*: they sum to one; Shachter 1988). Fixing the
    evidence takes its variables out of every scope; a CPT that then shares no
    chain of scopes with the query (the part of the network the evidence
    d-separates from it) only scales the answer. Such CPTs are left out when
    that scale is sure to be positive (each of them is strictly positive), and
    kept otherwise, so that evidence of probability zero is still refused.
    """
    variables = sorted(tables.ancestral_set([*query, *evidence]))
    factors = reduced(tables, variables, evidence)
    holding: dict[int, list[int]] = {}  # variable -> positions of the factors that hold it
    for f, (scope, _) in enumerate(factors):
        for v in scope:
            holding.setdefault(v, []).append(f)
    reached = [False] * len(factors)
    seen = set(query)
    frontier = list(query)
    while frontier:  # the factors connected to the query
        for f in holding.get(frontier.pop(), ()):
            if not reached[f]:
                reached[f] = True
                for u in factors[f][0]:
                    if u not in seen:
                        seen.add(u)
                        frontier.append(u)
    positive = tables.positive
    if all(reached[f] or positive[v] for f, v in enumerate(variables)):
        return [factor for factor, kept in zip(factors, reached, strict=True) if kept]
    return factors


def most_probable(tables: NetworkTables, evidence: Mapping[int, int]) -> dict[int, int]:
    """The most probable state of every non-evidence variable given the evidence.

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    variables = range(len(tables.cards))
    factors = tables.factors(variables, evidence)
    hidden = [v for v in variables if v not in evidence]
    order = elimination_order([f.variables for f in factors], hidden, tables.cards)
    left, steps, _ = eliminate(factors, order, np.max)
    if not float(product(left).table.max(initial=0.0)) > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    assignment: dict[int, int] = {}
    for step in reversed(steps):  # each step's other variables were eliminated later
        combined = step.combined
        index = tuple(
            slice(None) if v == step.variable else assignment[v] for v in combined.variables
        )
        assignment[step.variable] = int(np.argmax(combined.table[index]))
    for v in hidden:  # a variable in no factor (cannot happen in a valid network) stays 0
        assignment.setdefault(v, 0)
    return assignment


def log_joint(tables: NetworkTables, codes: Codes) -> Array:
    """``log P(row)`` of complete rows of codes, shape ``(N, V)`` -> ``(N,)``."""
    total = np.zeros(codes.shape[0])
    with np.errstate(divide="ignore"):
        for v, cpt in enumerate(tables.cpts):
            index = tuple(codes[:, u] for u in (*tables.parents[v], v))
            total += np.log(cpt[index])
    return total


def _draw(probabilities: Array, uniform: Array) -> Codes:
    """One state per row of ``probabilities`` (N, K) from uniforms in [0, 1) (N,)."""
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    states = (cumulative <= uniform[:, None]).sum(axis=1)
    return np.asarray(np.minimum(states, probabilities.shape[1] - 1), dtype=np.int64)


def forward_sample(tables: NetworkTables, uniforms: Array) -> Codes:
    """Ancestral sampling: one row per row of ``uniforms`` (N, V), parents before children."""
    return _clamped_sample(tables, tables.order, {}, uniforms)[0]


def posterior_sample(tables: NetworkTables, evidence: Mapping[int, int], uniforms: Array) -> Codes:
    """Exact samples from ``P(all variables | evidence)``, one per row of ``uniforms`` (N, V).

    Raises:
        InvalidInputError: the evidence has probability zero.
    """
    rows = uniforms.shape[0]
    variables = range(len(tables.cards))
    factors = tables.factors(variables, evidence)
    hidden = [v for v in variables if v not in evidence]
    order = elimination_order([f.variables for f in factors], hidden, tables.cards)
    left, steps, _ = eliminate(factors, order, np.sum)
    if not float(product(left).table.sum()) > 0.0:
        raise InvalidInputError("the evidence has probability zero under this network")
    codes = np.zeros((len(tables.cards), rows), dtype=np.int64).T  # columns contiguous
    for v, state in evidence.items():
        codes[:, v] = state
    for step in reversed(steps):
        combined = step.combined
        others = [u for u in combined.variables if u != step.variable]
        table = combined.expanded([*others, step.variable])  # (*others, states of variable)
        if others:
            weights = table[tuple(codes[:, u] for u in others)]  # (N, states)
        else:
            weights = np.broadcast_to(table, (rows, table.shape[-1]))
        codes[:, step.variable] = _draw(
            np.asarray(weights, dtype=np.float64), uniforms[:, step.variable]
        )
    return codes


CHUNK_ROWS = 65_536
"""Likelihood weighting draws at most this many rows at a time (bounded memory)."""


def likelihood_weighting(
    tables: NetworkTables,
    query: Sequence[int],
    evidence: Mapping[int, int],
    num_samples: int,
    rng: np.random.Generator,
) -> tuple[Array, float]:
    """An estimate of ``P(query | evidence)`` from ``num_samples`` weighted rows.

    Rows are drawn in chunks of :data:`CHUNK_ROWS`; each chunk's weights are
    kept as logarithms and rescaled by their largest, so a long list of
    evidence does not underflow.

    Returns:
        the estimated table (one axis per query variable, summing to 1) and the
        effective sample size ``(sum w)^2 / sum w^2`` of the weights.

    Raises:
        InvalidInputError: no row is consistent with the evidence (every weight is zero).
    """
    relevant = tables.ancestral_set([*query, *evidence])
    order = [v for v in tables.order if v in relevant]
    shape = [tables.cards[v] for v in query]
    table = np.zeros(math.prod(shape))
    peak, total, total_squares = -math.inf, 0.0, 0.0
    for start in range(0, num_samples, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, num_samples - start)
        uniforms = rng.random((rows, len(tables.cards)))
        codes, log_weights = _clamped_sample(tables, order, evidence, uniforms)
        chunk_peak = float(log_weights.max(initial=-math.inf))
        if not math.isfinite(chunk_peak):
            continue
        if chunk_peak > peak:  # rescale what was summed so far to the new peak
            shrink = math.exp(peak - chunk_peak) if math.isfinite(peak) else 0.0
            table *= shrink
            total *= shrink
            total_squares *= shrink * shrink
            peak = chunk_peak
        weights = np.exp(log_weights - peak)
        flat = (
            np.ravel_multi_index(tuple(codes[:, v] for v in query), shape)
            if query
            else np.zeros(rows, dtype=np.int64)
        )
        table += np.bincount(flat, weights=weights, minlength=table.size)
        total += float(weights.sum())
        total_squares += float(np.square(weights).sum())
    if not total > 0.0:
        raise InvalidInputError(
            f"likelihood weighting: none of the {num_samples} samples is consistent with the "
            "evidence (it has probability zero, or is too unlikely for this many samples)"
        )
    effective = total * total / total_squares
    return np.asarray((table / total).reshape(shape), dtype=np.float64), effective


def _clamped_sample(
    tables: NetworkTables, order: Sequence[int], evidence: Mapping[int, int], uniforms: Array
) -> tuple[Codes, Array]:
    """Ancestral sampling of ``order`` with the evidence clamped: codes (N, V) and log-weights (N,)."""
    rows = uniforms.shape[0]
    # column-major: each variable's column is contiguous
    codes = np.zeros((len(tables.cards), rows), dtype=np.int64).T
    log_weights = np.zeros(rows)
    samplers = tables.samplers
    by_variable = np.ascontiguousarray(uniforms.T)  # (V, N): each variable reads one row
    for v in order:
        config = _configurations(codes, tables.parents[v], tables.cpts[v].shape[:-1])
        if v in evidence:
            codes[:, v] = evidence[v]
            flat = tables.cpts[v].reshape(-1, tables.cards[v])  # (parent configurations, states)
            with np.errstate(divide="ignore"):
                log_weights += np.log(flat[0 if config is None else config, evidence[v]])
        else:
            codes[:, v] = samplers[v].draw(config, by_variable[v])
    return codes, log_weights


def _configurations(
    codes: Codes, parents: Sequence[int], cards: Sequence[int]
) -> NDArray[np.int64] | None:
    """Each row's parent configuration, the row-major index into the CPT's parent axes (None: no parents)."""
    if not parents:
        return None
    config = codes[:, parents[0]].copy()
    for u, card in zip(parents[1:], cards[1:], strict=True):  # Horner: ((p0 c1 + p1) c2 + p2)…
        config *= card
        config += codes[:, u]
    return config
